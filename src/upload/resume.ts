/**
 * The resume step: find blocks an earlier run staged that still match the source, so that only
 * the rest is sent. With a SAS that may read, the service's Get Block List says what is staged;
 * otherwise the local journal of acknowledged blocks does. Each candidate's range is re-hashed and
 * compared with the digest its ID names. Also here: discarding uncommitted blocks another client
 * left with IDs of another width, which make the service refuse ours.
 */
import { throwIfAborted } from '../core/abort.js';
import { BlobRequestFailure, sendBlobRequest } from './blob-http.js';
import { BLOCK_ID_BYTES, toBlockDigest } from './block-id.js';
import { hashOffThread } from './hash-pool.js';
import { UploadJournal } from './journal.js';
import { MAX_PLANNED_BLOCKS } from './link-controller.js';
import { gaps, resumeCandidates } from './planner.js';
import { sasAllowsRead } from './sas.js';
import type { UploadSession } from './session.js';

/** Open (or start) the journal of this blob; on failure the upload goes on without one. */
export async function openJournal(s: UploadSession): Promise<void> {
  if (s.o.journalDir === false) return;
  try {
    const { journal, recorded } = await UploadJournal.open(s.o.journalDir, s.sas.displayUrl, s.src.size);
    s.journal = journal;
    s.journalRecorded = recorded;
  } catch (error) {
    s.journalUnavailable(error);
  }
}

/** Reuse blocks an earlier run staged: from Get Block List when the SAS may read, else from the journal. */
export async function findStagedBlocks(s: UploadSession): Promise<void> {
  const size = s.src.size;
  let candidates = s.journalRecorded;
  let via: 'journal' | 'block-list' = 'journal';
  if (sasAllowsRead(s.sas)) {
    const listed = await getBlockList(s);
    if (listed) {
      via = 'block-list';
      const foreign = listed.uncommitted.some((id) => Buffer.from(id, 'base64').length !== BLOCK_ID_BYTES);
      if (foreign && s.o.clearStaleBlocks) {
        await clearStaleBlocks(s);
        return;
      }
      candidates = [...listed.uncommitted, ...listed.committed];
    }
  }
  // Greedy by offset: keep the first candidate that starts where coverage ends and still matches.
  let coveredTo = -1;
  const recorded = new Set(s.journalRecorded);
  for (const { id, ref } of resumeCandidates(candidates, size)) {
    if (ref.offset < coveredTo) continue;
    throwIfAborted(s.signal);
    const lease = await s.src.read(ref.offset, ref.length, s.buffers);
    let matches: boolean;
    try {
      matches = toBlockDigest(await hashOffThread(lease.bytes, ref.algorithm), ref.algorithm).equals(ref.digest);
    } finally {
      lease.release();
    }
    if (!matches) continue;
    s.acked.set(ref.offset, { id, offset: ref.offset, length: ref.length });
    s.bytesAcked += ref.length;
    coveredTo = ref.offset + ref.length;
    if (!recorded.has(id)) s.journal?.record(id);
  }
  if (s.acked.size > 0 && !leavesRoomForTheRest(s)) {
    const kept = s.acked.size;
    s.acked.clear();
    s.bytesAcked = 0;
    await s.journal?.reset().catch(() => {});
    s.emit({
      type: 'upload:warning',
      code: 'resumed-blocks-dropped',
      message: `The ${kept} blocks an earlier run staged for ${s.sas.displayUrl} leave too few of the 50,000 a blob may commit for the rest of the payload; staging every block again.`,
    });
    return;
  }
  if (s.acked.size > 0) {
    s.resumed = true;
    s.emit({ type: 'upload:resumed', via, blocksSkipped: s.acked.size, bytesSkipped: s.bytesAcked });
    s.progress();
  }
}

/**
 * Whether the blocks kept from an earlier run (which the commit lists too) leave enough of the
 * blocks a blob may commit for the bytes they do not cover, cut at the service's largest block.
 * An earlier run plans within the limit; a journal of an SDK that did not count kept blocks may
 * hold more.
 */
function leavesRoomForTheRest(s: UploadSession): boolean {
  const needed = gaps(s.acked.values(), s.src.size).reduce((n, g) => n + Math.ceil(g.length / s.sas.maxBlockBytes), 0);
  return s.acked.size + needed <= MAX_PLANNED_BLOCKS;
}

/** Get Block List (all); undefined when it is not available (refused, or failing). No blob at all: nothing staged. */
async function getBlockList(s: UploadSession): Promise<{ committed: string[]; uncommitted: string[] } | undefined> {
  try {
    const res = await s.withRetries('block-list', s.o.blockListRetry, () =>
      sendBlobRequest(s.http, {
        method: 'GET',
        phase: 'block-list',
        params: { comp: 'blocklist', blocklisttype: 'all' },
        headers: {},
        timeoutMs: s.tryTimeoutMs(0, 'block-list'),
        readBody: true,
      }),
    );
    const section = (name: string) => {
      const part = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(res.body)?.[1] ?? '';
      return [...part.matchAll(/<Name>([^<]*)<\/Name>/g)].map((m) => m[1] ?? '');
    };
    return { committed: section('CommittedBlocks'), uncommitted: section('UncommittedBlocks') };
  } catch (error) {
    if (!(error instanceof BlobRequestFailure)) throw error;
    if (error.status === 404) return { committed: [], uncommitted: [] };
    s.emit({
      type: 'upload:warning',
      code: 'block-list-unavailable',
      message: `Get Block List failed (${error.message}); resuming from the local journal instead.`,
    });
    return undefined;
  }
}

/**
 * Discard uncommitted blocks another client left with IDs of a different width (the service
 * refuses ours while they exist). Only a commit or a Put Blob discards them; an empty Put Blob is
 * the one that commits nothing of value, and our own commit replaces it right after. Runs once per
 * upload; concurrent callers share it.
 */
export function clearStaleBlocks(s: UploadSession): Promise<void> {
  s.staleClearing ??= (async () => {
    let tries = 0;
    try {
      await s.withRetries('clear-stale', s.o.retry, ({ number }) => {
        tries = number;
        return sendBlobRequest(s.http, {
          method: 'PUT',
          phase: 'clear-stale',
          params: {},
          headers: { 'x-ms-blob-type': 'BlockBlob' },
          body: new Uint8Array(0),
          timeoutMs: s.tryTimeoutMs(0, 'clear-stale'),
        });
      });
    } catch (error) {
      throw error instanceof BlobRequestFailure ? s.uploadError(error, tries) : error;
    }
    // None of our blocks can have been staged while the other width was there (the service refused
    // them), so nothing acknowledged is lost; journal entries of earlier runs are.
    s.staleCleared = true;
    await s.journal?.reset().catch(() => {});
    s.emit({
      type: 'upload:warning',
      code: 'stale-blocks-cleared',
      message: `${s.sas.displayUrl} held uncommitted blocks of another client with a different ID width; they were discarded.`,
    });
  })();
  return s.staleClearing;
}
