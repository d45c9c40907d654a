/**
 * `uploadBlockBlob`: upload a file or byte array to an Azure block-blob SAS URL so that it
 * survives slow and faulty links.
 *
 * Small payloads go in one Put Blob (`put-blob.ts`). Larger ones are cut into blocks whose IDs name
 * their own offset, length and MD5 (`block-id.ts`, `planner.ts`), sent a few at a time with Put
 * Block, and committed with one Put Block List of `<Latest>` entries, so a commit whose response
 * was lost can simply be sent again (`driver.ts`). A failed block goes back to the planner alone
 * and is re-cut at the current block size, which shrinks on 408s and timeouts
 * (`link-controller.ts`). Acknowledged blocks are journaled so that a re-run sends only what is
 * missing; with a SAS that may read, Get Block List tells the same thing (`resume.ts`). Every retry
 * decision is the SDK's one retry policy; cancellation is one operation scope.
 */
import { throwIfAborted } from '../core/abort.js';
import { ErrorCodes, UploadError } from '../core/errors.js';
import { runInScope } from '../core/scope.js';
import { uploadBlocks } from './driver.js';
import { MAX_COMMITTED_BLOCKS } from './link-controller.js';
import { resolveOptions } from './options.js';
import { putBlob } from './put-blob.js';
import { parseBlobSas } from './sas.js';
import { UploadSession } from './session.js';
import { openSource } from './source.js';
import type { UploadBlockBlobOptions, UploadBlockBlobResult } from './types.js';

export { isResumableUploadError } from './upload-error.js';

/** Tolerated clock difference when checking the SAS expiry before starting, in milliseconds. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Upload `source` (a file path or bytes) to the blob named by `sasUrl` and commit it.
 *
 * Resolves when the blob is committed, with the `x-ms-version-id` of the new version (Astro's
 * `dagTarballVersion`). Rejects with `UploadError` (codes `ASTRO_UPLOAD_*`) or, once `signal` has
 * fired, `AstroAbortError`. Never commits a payload that is incomplete or that changed while uploading.
 *
 * @example
 * ```ts
 * const { versionId } = await uploadBlockBlob(deploy.dagsUploadUrl, '/tmp/bundle.tar.gz', {
 *   contentType: 'application/gzip',
 *   retry: { maxRetries: 10 },
 *   onEvent: (e) => e.type === 'upload:progress' && render(e.bytesAcked / e.totalBytes),
 * });
 * ```
 */
export async function uploadBlockBlob(
  sasUrl: string,
  source: string | Uint8Array,
  options: UploadBlockBlobOptions = {},
): Promise<UploadBlockBlobResult> {
  const sas = parseBlobSas(sasUrl);
  throwIfAborted(options.signal);
  if (sas.expiresAt && sas.expiresAt.getTime() < Date.now() - CLOCK_SKEW_MS) {
    throw new UploadError(
      ErrorCodes.UPLOAD_SAS_EXPIRED,
      `The upload URL for ${sas.displayUrl} expired at ${sas.expiresAt.toISOString()}. Create a new deploy to get a fresh upload URL.`,
    );
  }
  const resolved = resolveOptions(options, sas);
  const src = await openSource(source);
  try {
    return await runInScope(options.signal, async (scope) => {
      const session = new UploadSession(sas, src, resolved, scope, options);
      try {
        return await run(session);
      } finally {
        // Acknowledged blocks stay journaled for a re-run; only the lock goes.
        await session.journal?.release().catch(() => {});
      }
    });
  } finally {
    await src.close().catch(() => {});
  }
}

async function run(s: UploadSession): Promise<UploadBlockBlobResult> {
  const size = s.src.size;
  // Past maxBlockSizeBytes × 50,000 blocks grow beyond the cap as needed; only the service limit is hard.
  if (size > MAX_COMMITTED_BLOCKS * s.sas.maxBlockBytes) {
    throw new UploadError(
      ErrorCodes.UPLOAD_TOO_LARGE,
      `The payload (${size} bytes) exceeds the largest block blob this upload URL's service version allows (50,000 blocks of ${s.sas.maxBlockBytes} bytes).`,
    );
  }
  // A Put Blob streamed from a file is its own commit: without a Content-MD5 nothing would stop a
  // file rewritten mid-request from being stored, so such a file goes as blocks (committed only
  // after the file is checked).
  const single = size <= s.o.singleShotMaxBytes && (s.o.contentMd5 || !s.src.wholeIsStreamed);
  s.emit({
    type: 'upload:start',
    blobUrl: s.sas.displayUrl,
    totalBytes: size,
    mode: single ? 'single' : 'blocks',
    blockSizeBytes: s.link.blockBytes,
    concurrency: s.link.concurrency,
  });
  if (single) {
    const outcome = await putBlob(s);
    if (outcome) return outcome;
    // The link could not carry the payload in one request: stage it in (smaller) blocks instead.
  }
  return uploadBlocks(s);
}
