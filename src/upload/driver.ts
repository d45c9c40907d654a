/**
 * The block driver: sends the planner's blocks a few at a time (as many as the link controller
 * allows), hands failed blocks back to the planner after the backoff the retry policy asks for,
 * and commits the acknowledged blocks with one Put Block List. A block's failure that the policy
 * will not retry fails the whole upload at once through the operation scope.
 */
import { sleep } from '../core/abort.js';
import { ErrorCodes, UploadError } from '../core/errors.js';
import { failureOf } from '../core/failure.js';
import { backoffDelay, nextRetryDelay } from '../core/retry.js';
import { BlobRequestFailure, sendBlobRequest, type BlobResponse } from './blob-http.js';
import { toBlockDigest } from './block-id.js';
import { MAX_COMMITTED_BLOCKS } from './link-controller.js';
import { blockIdOf, blockListXml, commitOrder, gaps, BlockPlanner, type AckedBlock, type PlannedBlock } from './planner.js';
import { clearStaleBlocks, findStagedBlocks, openJournal } from './resume.js';
import type { UploadSession } from './session.js';
import { md5, type SourceBlock } from './source.js';
import type { UploadBlockBlobResult } from './types.js';
import { BlocksMissingError, blocksVanishedError } from './upload-error.js';

/** Stage the payload as blocks (reusing what an earlier run staged) and commit them. */
export async function uploadBlocks(s: UploadSession): Promise<UploadBlockBlobResult> {
  const size = s.src.size;
  await openJournal(s);
  if (s.o.resume) await findStagedBlocks(s);
  else if (s.journalRecorded.length > 0) await s.journal?.reset().catch(() => {});
  const planner = new BlockPlanner(s.o.minBlockSizeBytes);
  for (;;) {
    // Blocks kept from an earlier run are listed in the commit too: the rest is sized around them.
    planner.plan(gaps(s.acked.values(), size), s.acked.size);
    try {
      await sendPlanned(s, planner);
    } finally {
      // What was acknowledged must be on disk before we give up or commit: it is what a re-run resumes from.
      const failed = await s.journal?.flush();
      if (failed) s.journalUnavailable(failed);
    }
    await s.src.assertUnchanged();
    const { blocks, coveredBytes, complete } = commitOrder(s.acked.values(), size);
    if (!complete) {
      throw new UploadError(
        ErrorCodes.UPLOAD_FAILED,
        `Internal error: the acknowledged blocks of ${s.sas.displayUrl} do not cover the payload (${coveredBytes} of ${size} bytes); nothing was committed.`,
      );
    }
    // The service refuses a longer list as an invalid one, which would read as blocks lost to another upload.
    if (blocks.length > MAX_COMMITTED_BLOCKS) {
      throw new UploadError(
        ErrorCodes.UPLOAD_FAILED,
        `Internal error: ${s.sas.displayUrl} would be committed from ${blocks.length} blocks, more than the ${MAX_COMMITTED_BLOCKS} a blob may have; nothing was committed.`,
      );
    }
    try {
      const res = await commit(s, blocks);
      await s.journal?.remove().catch(() => {});
      return s.finish(res, blocks.length, 'blocks');
    } catch (error) {
      if (!(error instanceof BlocksMissingError)) throw error;
      await restage(s, error);
    }
  }
}

/**
 * The commit found some of our staged blocks gone. Blocks reused from an earlier run may have
 * expired; blocks this run staged are gone only because another upload of the same blob committed
 * (or Put a blob) meanwhile, which discards every uncommitted block (astro-cli#1586). Either way
 * nothing of ours was committed: stage every block again and commit again, after a jittered
 * backoff that grows with each round, so that uploaders racing on one blob fall out of step and
 * each one's commit lands between the others'. Our block IDs name their bytes, so a commit holds
 * exactly our payload or fails: never a mix of two uploads. Bounded by `maxRestages`.
 */
async function restage(s: UploadSession, error: BlocksMissingError): Promise<void> {
  if (s.restages >= s.o.maxRestages) throw blocksVanishedError(s.sas, error, s.restages);
  s.restages += 1;
  const delayMs = backoffDelay(s.restages, s.o.retry);
  const reused = s.resumed;
  s.emit({
    type: 'upload:warning',
    code: reused ? 'resumed-blocks-lost' : 'blocks-lost-to-other-upload',
    message: reused
      ? `The service no longer has some staged blocks of ${s.sas.displayUrl}; sending every block again in ${delayMs} ms (round ${s.restages} of at most ${s.o.maxRestages}).`
      : `Another upload committed ${s.sas.displayUrl} while this one staged its blocks, which discarded them; staging every block again in ${delayMs} ms (round ${s.restages} of at most ${s.o.maxRestages}).`,
  });
  s.acked.clear();
  s.bytesAcked = 0;
  s.resumed = false;
  await s.journal?.reset().catch(() => {});
  await sleep(delayMs, s.signal);
}

/** Send every planned block, a few at a time, until all are acknowledged or one fails for good. */
async function sendPlanned(s: UploadSession, planner: BlockPlanner): Promise<void> {
  const active = new Set<Promise<void>>();
  let fatal: { error: unknown } | undefined;
  let inFlightBytes = 0;
  // Blocks grow on a proven link; the bytes in flight, not only their number, are bounded, so the
  // service's queue (and the memory a retry of a caller's buffer pins) stays the same size however
  // large blocks get. One block always goes, whatever its size.
  const roomFor = (bytes: number) => active.size === 0 || inFlightBytes + bytes <= s.o.maxBytesInFlight;
  while (!fatal) {
    while (!fatal && active.size < s.link.concurrency && planner.hasPending && roomFor(Math.min(s.link.blockBytes, planner.remainingBytes))) {
      const block = planner.cut((remaining, cut) => s.link.nextBlockBytes(remaining, cut), s.link.epoch);
      inFlightBytes += block.length;
      const task: Promise<void> = sendBlock(s, planner, block)
        .catch((error: unknown) => {
          // The first failure is the upload's; it cancels the blocks still in flight.
          fatal ??= { error };
          s.scope.fail(error);
        })
        .finally(() => {
          inFlightBytes -= block.length;
          active.delete(task);
        });
      active.add(task);
    }
    if (active.size === 0) break;
    await Promise.race(active);
  }
  if (fatal) {
    await Promise.allSettled([...active]);
    throw fatal.error;
  }
}

/** Send one block; after a failure the policy retries, wait its delay and hand the range back. */
async function sendBlock(s: UploadSession, planner: BlockPlanner, block: PlannedBlock): Promise<void> {
  const source = await s.src.block(block.offset, block.length, s.o.contentMd5 ? 'md5' : 'sha256');
  let retry: Awaited<ReturnType<typeof sendSourceBlock>>;
  try {
    retry = await sendSourceBlock(s, planner, block, source);
  } catch (error) {
    source.release(false);
    throw error;
  }
  // Answered: every byte left the socket. After a failure the socket may still hold some.
  source.release(retry === undefined);
  if (retry === undefined || retry === 'requeued') return;
  // Nothing of the block is held through the backoff (seconds, at most): it is read and hashed
  // again (and re-cut at the current size) when its turn comes.
  s.noteRetry(retry.failure, retry.attempt, retry.delayMs, 'put-block', block.index);
  await sleep(retry.delayMs, s.signal);
  planner.requeue({ offset: block.offset, length: block.length, attempts: retry.attempt });
}

async function sendSourceBlock(
  s: UploadSession,
  planner: BlockPlanner,
  block: PlannedBlock,
  source: SourceBlock,
): Promise<{ failure: BlobRequestFailure; attempt: number; delayMs: number } | 'requeued' | undefined> {
  const algorithm = s.o.contentMd5 ? 'md5' : 'sha256';
  const digest = toBlockDigest(source.digest, algorithm);
  const id = blockIdOf(block, digest, algorithm);
  const clearedBeforeSend = s.staleCleared;
  try {
    const res = await sendBlobRequest(s.http, {
      method: 'PUT',
      phase: 'put-block',
      params: { comp: 'block', blockid: id },
      headers: s.o.contentMd5 ? { 'content-md5': digest.toString('base64') } : {},
      body: source.body,
      timeoutMs: s.tryTimeoutMs(block.length, 'put-block'),
      onBodyBytes: (n) => (s.bytesSent += n),
    });
    // Journal first: the acknowledgement is what a re-run after a crash resumes from.
    s.journal?.record(id);
    s.link.recordSuccess(block.length, res.elapsedMs);
    if (!s.acked.has(block.offset)) s.bytesAcked += block.length;
    s.acked.set(block.offset, { id, offset: block.offset, length: block.length });
    s.progress();
    return undefined;
  } catch (error) {
    if (!(error instanceof BlobRequestFailure)) throw error;
    const attempt = block.attempts + 1;
    // Another client's uncommitted blocks with IDs of another width make the service refuse ours.
    // Clear them once; a block sent after that and still refused has a real problem.
    if (error.status === 400 && error.serviceCode === 'InvalidBlobOrBlock' && s.o.clearStaleBlocks && !clearedBeforeSend && attempt <= s.o.retry.maxRetries) {
      await clearStaleBlocks(s);
      planner.requeue({ offset: block.offset, length: block.length, attempts: attempt });
      return 'requeued';
    }
    // The service hashed other bytes than we did. A file rewritten since it was read is the
    // caller's problem (ASTRO_UPLOAD_SOURCE_CHANGED); otherwise the bytes were corrupted on the
    // way, and the block is sent again like after any transient fault.
    if (error.digestMismatch) await s.src.assertUnchanged();
    // A 413 at the smallest block size cannot be helped by cutting smaller.
    const tooBigAtFloor = error.retryCause === 'http-413' && block.length <= s.o.minBlockSizeBytes;
    const policy = error.digestMismatch ? s.o.digestMismatchRetry : s.o.retry;
    const delayMs = tooBigAtFloor ? undefined : nextRetryDelay(failureOf(error), attempt, s.retries + 1, policy);
    if (delayMs === undefined) {
      // A file body that ended early fails the request in a way no retry helps: say why.
      await s.src.assertUnchanged();
      throw s.uploadError(error, attempt);
    }
    s.link.recordFailure(error, block.epoch);
    return { failure: error, attempt, delayMs };
  }
}

/** Put Block List with `<Latest>` entries: a commit whose answer was lost is simply sent again. */
async function commit(s: UploadSession, blocks: AckedBlock[]): Promise<BlobResponse> {
  const body = Buffer.from(blockListXml(blocks), 'utf8');
  let tries = 0;
  try {
    return await s.withRetries('commit', s.o.retry, ({ number }) => {
      tries = number;
      return sendBlobRequest(s.http, {
        method: 'PUT',
        phase: 'commit',
        params: { comp: 'blocklist' },
        headers: {
          'content-type': 'application/xml; charset=utf-8',
          'content-md5': md5(body).toString('base64'),
          'x-ms-blob-content-type': s.o.contentType,
        },
        body,
        timeoutMs: s.tryTimeoutMs(body.byteLength, 'commit'),
      });
    });
  } catch (error) {
    if (!(error instanceof BlobRequestFailure)) throw error;
    if (error.status === 400 && error.serviceCode === 'InvalidBlockList') throw new BlocksMissingError(error.message);
    throw s.uploadError(error, tries);
  }
}
