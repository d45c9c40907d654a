/**
 * The single Put Blob of a small payload. A 408, timeout, 413 or reset says the link cannot carry
 * the payload in one request: after that retry's wait the upload goes on in (smaller) blocks.
 */
import { rm } from 'node:fs/promises';
import { BlobRequestFailure, sendBlobRequest } from './blob-http.js';
import { UploadJournal } from './journal.js';
import type { UploadSession } from './session.js';
import type { UploadBlockBlobResult, UploadBlockSizeEvent } from './types.js';

/** One Put Blob, retried under the upload's policy; undefined when the link calls for blocks instead. */
export async function putBlob(s: UploadSession): Promise<UploadBlockBlobResult | undefined> {
  const size = s.src.size;
  // Read and hash once: a retry sends the same bytes (a changed file is caught before each try).
  const payload = await s.src.whole('md5');
  let tries = 0;
  let fallBack = false;
  let failedTry = false;
  try {
    const contentMd5 = s.o.contentMd5 ? payload.digest.toString('base64') : undefined;
    return await s.withRetries('put-blob', s.o.retry, async ({ number }) => {
      // The last try failed in a way that says "smaller": its retry is the first block.
      if (fallBack) return undefined;
      tries = number;
      await s.src.assertUnchanged();
      try {
        const res = await sendBlobRequest(s.http, {
          method: 'PUT',
          phase: 'put-blob',
          params: {},
          headers: {
            'x-ms-blob-type': 'BlockBlob',
            'x-ms-blob-content-type': s.o.contentType,
            ...(contentMd5 ? { 'content-md5': contentMd5 } : {}),
          },
          body: payload.body,
          timeoutMs: s.tryTimeoutMs(size, 'put-blob'),
          onBodyBytes: (n) => (s.bytesSent += n),
        });
        s.bytesAcked = size;
        s.progress();
        // A Put Blob discards staged blocks, so a journal of an earlier blocks run is void now.
        if (s.o.journalDir !== false) await rm(UploadJournal.pathFor(s.o.journalDir, s.sas.displayUrl), { force: true }).catch(() => {});
        return s.finish(res, 1, 'single');
      } catch (error) {
        failedTry = true;
        const digestMismatch = error instanceof BlobRequestFailure && error.digestMismatch;
        // A changed source explains a digest mismatch, and any failure of a body read from the
        // file during the request (one cut short, say): then say so rather than retry.
        if (digestMismatch || s.src.wholeIsStreamed) await s.src.assertUnchanged();
        // A body corrupted on the way is sent again as blocks, each retried on its own.
        if (digestMismatch) fallBack = true;
        if (error instanceof BlobRequestFailure && (error.suggestsSmallerBlocks || error.retryCause === 'reset') && size > s.o.minBlockSizeBytes) {
          fallBack = true;
          // Make the first blocks smaller than the payload that just failed.
          s.link.recordFailure(error);
          s.link.capBlockBytes(size / 2, error.retryCause as UploadBlockSizeEvent['reason']);
        }
        throw error;
      }
    });
  } catch (error) {
    // Not retried by the policy (a 400), but the blocks below are.
    if (fallBack && error instanceof BlobRequestFailure && error.digestMismatch) return undefined;
    if (error instanceof BlobRequestFailure) throw s.uploadError(error, tries);
    throw error;
  } finally {
    // After a failed try a cut socket may still hold some of the body: its memory is not reused.
    payload.release(!failedTry);
  }
}
