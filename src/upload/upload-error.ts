/**
 * The typed errors an upload ends with: a request failure the upload gives up on becomes an
 * `UploadError` whose code says whether running the upload again can help.
 */
import { ErrorCodes, UploadError, isAstroError, type AstroErrorCode } from '../core/errors.js';
import { finalProxyRefusalHint } from '../core/failure.js';
import type { BlobRequestFailure } from './blob-http.js';
import { uploadRetryStatus } from './options.js';
import type { BlobSas } from './sas.js';

/** The error to throw for `failure`, given up on after `attempts` tries. */
export function toUploadError(sas: BlobSas, failure: BlobRequestFailure, attempts: number): UploadError {
  const status = failure.status;
  const details = { status, serviceCode: failure.serviceCode, attempts };
  let code: AstroErrorCode = ErrorCodes.UPLOAD_FAILED;
  let hint: string;
  const proxyHint = finalProxyRefusalHint(failure.failure);
  if (proxyHint !== undefined) {
    // The proxy, not the storage service, refused (407 and other final statuses on CONNECT).
    code = ErrorCodes.UPLOAD_REJECTED;
    hint = proxyHint;
  } else if (failure.digestMismatch) {
    hint = `The service computed another MD5 than the one sent with the data, ${attempts} time(s) in a row: the bytes were corrupted between this process and the service (a proxy rewriting bodies, faulty memory or network hardware), and nothing corrupt was stored. Blocks already acknowledged are kept: running the same upload again resumes it.`;
  } else if (status === 403) {
    const expired = (sas.expiresAt !== undefined && sas.expiresAt.getTime() <= Date.now()) || /time frame|expir/i.test(failure.message);
    code = expired ? ErrorCodes.UPLOAD_SAS_EXPIRED : ErrorCodes.UPLOAD_REJECTED;
    hint = expired
      ? 'The SAS of the upload URL has expired: create a new deploy to get a fresh URL.'
      : `The storage service refused the SAS (permissions sp=${sas.permissions || '?'}): the URL is invalid, revoked or lacks a permission; get a fresh upload URL.`;
  } else if (status === 404) {
    code = ErrorCodes.UPLOAD_REJECTED;
    hint = 'The container or blob does not exist: check that the upload URL is the one Astro returned.';
  } else if (status !== undefined && status >= 300 && status < 400) {
    // Never followed: the SAS would go wherever the redirect points, and Azure storage does not redirect.
    code = ErrorCodes.UPLOAD_REJECTED;
    hint = 'The answer is a redirect, which an upload does not follow: check that the upload URL is the one Astro returned and that no proxy or gateway on the way redirects it.';
  } else if (status !== undefined && status >= 400 && status < 500 && !uploadRetryStatus(status)) {
    code = ErrorCodes.UPLOAD_REJECTED;
    hint = 'The storage service rejected the request; this is not a transient fault.';
  } else {
    hint = `Gave up after ${attempts} attempt(s). Blocks already acknowledged are kept: running the same upload again resumes it.`;
  }
  return new UploadError(code, `Uploading to ${sas.displayUrl} failed: ${failure.message}. ${hint}`, details, {
    cause: failure,
    retryable: code === ErrorCodes.UPLOAD_FAILED,
  });
}

/** The commit found that the service no longer has some listed block. */
export class BlocksMissingError extends Error {}

/**
 * Staged blocks vanished at every commit, `restages` times staged again: other uploads of the same
 * blob kept committing meanwhile. Nothing of ours was committed.
 */
export function blocksVanishedError(sas: BlobSas, error: BlocksMissingError, restages: number): UploadError {
  return new UploadError(
    ErrorCodes.UPLOAD_CONFLICT,
    `Committing ${sas.displayUrl} failed ${restages + 1} times because our staged blocks vanished (${error.message}): other uploads to the same blob kept committing meanwhile, and each commit discards the blocks others staged (astro-cli#1586). Nothing of this upload was committed. Upload again when the others are done, or raise maxRestages.`,
    { status: 400, serviceCode: 'InvalidBlockList', attempts: restages + 1 },
    { retryable: true },
  );
}

/** True for errors of this module that a later run may get past (a resumable failure). */
export function isResumableUploadError(error: unknown): boolean {
  return isAstroError(error, ErrorCodes.UPLOAD_FAILED) && error.retryable;
}
