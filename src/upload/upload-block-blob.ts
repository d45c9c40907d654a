/**
 * `uploadBlockBlob`: upload a file or byte array to an Azure block-blob SAS URL so that it
 * survives slow and faulty links.
 *
 * Small payloads go in one Put Blob. Larger ones are cut into blocks whose IDs name their own
 * offset, length and MD5 (see `block-id.ts`), sent a few at a time with Put Block, and committed
 * with one Put Block List of `<Latest>` entries (so a commit whose response was lost can simply be
 * sent again). A failed block goes back to the queue alone and is re-cut at the current block
 * size, which shrinks on 408s and timeouts (see `link-controller.ts`). Acknowledged blocks are
 * journaled so that a re-run sends only what is missing; with a SAS that may read, Get Block List
 * tells the same thing.
 */
import { rm } from 'node:fs/promises';
import { throwIfAborted, linkSignals, sleep, toAbortError } from '../core/abort.js';
import { AstroAbortError, AstroConfigError, ErrorCodes, UploadError, isAstroError, type AstroErrorCode } from '../core/errors.js';
import { redactDeep } from '../core/redact.js';
import { retryDelayMs } from '../core/retry.js';
import { BlobRequestFailure, sendBlobRequest, type BlobHttpContext, type BlobResponse } from './blob-http.js';
import { BLOCK_ID_BYTES, decodeBlockId, encodeBlockId, toBlockDigest } from './block-id.js';
import { BufferPool } from './buffer-pool.js';
import { hashOffThread } from './hash-pool.js';
import { JournalBusyError, UploadJournal, defaultJournalDir } from './journal.js';
import { ASSUMED_RATE_BYTES_PER_SECOND, LinkController, MAX_COMMITTED_BLOCKS } from './link-controller.js';
import { parseBlobSas, sasAllowsRead, type BlobSas } from './sas.js';
import { md5, openSource, type UploadSource } from './source.js';
import type {
  TryTimeoutContext,
  UploadBlockBlobOptions,
  UploadBlockBlobResult,
  UploadEvent,
  UploadPhase,
} from './types.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** Tolerated clock difference when checking the SAS expiry before starting, in milliseconds. */
const CLOCK_SKEW_MS = 5 * 60_000;
/** Put Block List has a 60 s server-side budget; give it room on top. */
const COMMIT_TIMEOUT_MS = 90_000;
const BLOCK_LIST_TIMEOUT_MS = 60_000;
const MIN_TRY_TIMEOUT_MS = 20_000;
/** Most a first retry after a connection reset waits, in milliseconds. */
const FIRST_RESET_RETRY_JITTER_MS = 100;

interface ResolvedOptions {
  blockSizeBytes: number;
  minBlockSizeBytes: number;
  maxBlockSizeBytes: number;
  concurrency: number;
  maxRetriesPerBlock: number;
  singleShotMaxBytes: number;
  targetBlockDurationMs: number;
  initialRetryDelayMs: number;
  maxRetryDelayMs: number;
  maxRetryAfterMs: number;
  journalDir: string | false;
  resume: boolean;
  requireVersionId: boolean;
  contentType: string;
  clearStaleBlocks: boolean;
  contentMd5: boolean;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} of uploadBlockBlob must be a positive number (got ${value}).`);
  }
  return value;
}

function resolveOptions(o: UploadBlockBlobOptions, sas: BlobSas): ResolvedOptions {
  const maxBlock = Math.min(sas.maxBlockBytes, positive('maxBlockSizeBytes', o.maxBlockSizeBytes, 4 * MIB));
  const minBlock = Math.min(maxBlock, positive('minBlockSizeBytes', o.minBlockSizeBytes, 256 * KIB));
  return {
    blockSizeBytes: Math.min(maxBlock, Math.max(minBlock, positive('blockSizeBytes', o.blockSizeBytes, 2 * MIB))),
    minBlockSizeBytes: minBlock,
    maxBlockSizeBytes: maxBlock,
    concurrency: Math.floor(positive('concurrency', o.concurrency, 8)),
    maxRetriesPerBlock: o.maxRetriesPerBlock === undefined ? 6 : Math.max(0, Math.floor(o.maxRetriesPerBlock)),
    singleShotMaxBytes: Math.min(sas.maxPutBlobBytes, o.singleShotMaxBytes ?? 4 * MIB),
    targetBlockDurationMs: positive('targetBlockDurationMs', o.targetBlockDurationMs, 8000),
    initialRetryDelayMs: o.initialRetryDelayMs ?? 500,
    maxRetryDelayMs: o.maxRetryDelayMs ?? 8000,
    maxRetryAfterMs: o.maxRetryAfterMs ?? 60_000,
    journalDir: o.journalDir === undefined ? defaultJournalDir() : o.journalDir,
    resume: o.resume ?? true,
    requireVersionId: o.requireVersionId ?? true,
    contentType: o.contentType ?? 'application/octet-stream',
    clearStaleBlocks: o.clearStaleBlocks ?? true,
    contentMd5: o.contentMd5 ?? true,
  };
}

/** A byte range still to send, with the failures it has had so far. */
interface PendingRange {
  offset: number;
  length: number;
  attempts: number;
}

/** A block being sent: its range, its index in cut order and the link epoch it was sized in. */
interface CutBlock extends PendingRange {
  index: number;
  epoch: number;
}

/** A block the service acknowledged (or that an earlier run staged and still matches). */
interface AckedBlock {
  id: string;
  offset: number;
  length: number;
}

/** Thrown by the commit when the service no longer has some listed block. */
class BlocksMissingError extends Error {}

/**
 * Upload `source` (a file path or bytes) to the blob named by `sasUrl` and commit it.
 *
 * Resolves when the blob is committed, with the `x-ms-version-id` of the new version (Astro's
 * `dagTarballVersion`). Rejects with `UploadError` (codes `ASTRO_UPLOAD_*`) or, when `signal` fires,
 * `AstroAbortError`. Never commits a payload that is incomplete or that changed while uploading.
 *
 * @example
 * ```ts
 * const { versionId } = await uploadBlockBlob(deploy.dagsUploadUrl, '/tmp/bundle.tar.gz', {
 *   contentType: 'application/gzip',
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
    return await new BlockBlobUpload(sas, src, resolved, options).run();
  } finally {
    await src.close().catch(() => {});
  }
}

class BlockBlobUpload {
  private readonly http: BlobHttpContext;
  /** Fires on a fatal error so the other blocks in flight stop at once. */
  private readonly stop = new AbortController();
  private readonly linked: { signal: AbortSignal; dispose(): void };
  private readonly link: LinkController;
  private retries = 0;
  private bytesSent = 0;
  private bytesAcked = 0;
  private blocksCut = 0;
  private pending: PendingRange[] = [];
  private acked = new Map<number, AckedBlock>();
  private journal: UploadJournal | undefined;
  private resumed = false;
  private staleClearing: Promise<void> | undefined;
  private staleCleared = false;
  private journalRecorded: string[] = [];
  /** Block buffers reused across blocks (fresh memory is slow to touch; see buffer-pool.ts). */
  private readonly buffers = new BufferPool();

  constructor(
    private readonly sas: BlobSas,
    private readonly src: UploadSource,
    private readonly o: ResolvedOptions,
    private readonly raw: UploadBlockBlobOptions,
  ) {
    this.linked = linkSignals(raw.signal, this.stop.signal);
    this.http = { sas, dispatcher: raw.dispatcher, signal: this.linked.signal };
    this.link = new LinkController({
      initialBlockBytes: o.blockSizeBytes,
      minBlockBytes: o.minBlockSizeBytes,
      maxBlockBytes: o.maxBlockSizeBytes,
      maxConcurrency: o.concurrency,
      targetBlockDurationMs: o.targetBlockDurationMs,
      onBlockSize: (e) => this.emit(e),
      onConcurrency: (e) => this.emit(e),
    });
  }

  private emit(event: UploadEvent): void {
    if (!this.raw.onEvent) return;
    try {
      this.raw.onEvent(redactDeep(event));
    } catch {
      // A caller's rendering bug must not break the upload.
    }
  }

  async run(): Promise<UploadBlockBlobResult> {
    try {
      return await this.runInner();
    } catch (error) {
      if (this.raw.signal?.aborted && !(error instanceof AstroAbortError)) throw toAbortError(this.raw.signal);
      throw error;
    } finally {
      this.linked.dispose();
      // Acknowledged blocks stay journaled for a re-run; only the lock goes.
      await this.journal?.release().catch(() => {});
    }
  }

  private async runInner(): Promise<UploadBlockBlobResult> {
    const size = this.src.size;
    // Past maxBlockSizeBytes × 50,000 blocks grow beyond the cap as needed; only the service limit is hard.
    if (size > MAX_COMMITTED_BLOCKS * this.sas.maxBlockBytes) {
      throw new UploadError(
        ErrorCodes.UPLOAD_TOO_LARGE,
        `The payload (${size} bytes) exceeds the largest block blob this upload URL's service version allows (50,000 blocks of ${this.sas.maxBlockBytes} bytes).`,
      );
    }
    const single = size <= this.o.singleShotMaxBytes;
    this.emit({
      type: 'upload:start',
      blobUrl: this.sas.displayUrl,
      totalBytes: size,
      mode: single ? 'single' : 'blocks',
      blockSizeBytes: this.link.blockBytes,
      concurrency: this.link.concurrency,
    });
    if (single) {
      const outcome = await this.putBlob();
      if (outcome) return outcome;
      // The link could not carry the payload in one request: stage it in (smaller) blocks instead.
    }
    return this.uploadBlocks();
  }

  // ---------------------------------------------------------------- timeouts and errors

  private tryTimeoutMs(bytes: number, phase: UploadPhase): number {
    const rule = this.raw.tryTimeoutMs;
    const ctx: TryTimeoutContext = { bytes, bytesPerSecond: this.link.rateBytesPerSecond, phase };
    if (typeof rule === 'number') return rule;
    if (typeof rule === 'function') return rule(ctx);
    if (phase === 'commit') return COMMIT_TIMEOUT_MS;
    if (phase === 'block-list') return BLOCK_LIST_TIMEOUT_MS;
    const rate = ctx.bytesPerSecond ?? ASSUMED_RATE_BYTES_PER_SECOND;
    return Math.max(MIN_TRY_TIMEOUT_MS, Math.ceil((3 * bytes * 1000) / rate));
  }

  /** Count a retry, report it as an `upload:retry` event, and wait its backoff (cut short by abort). */
  private async waitBeforeRetry(failure: BlobRequestFailure, attempt: number, phase: UploadPhase, blockIndex?: number): Promise<void> {
    const delayMs = this.retryDelayMs(failure, attempt);
    this.retries += 1;
    this.emit({
      type: 'upload:retry',
      phase,
      ...(blockIndex !== undefined ? { blockIndex } : {}),
      attempt,
      delayMs,
      cause: failure.retryCause,
      ...(failure.status !== undefined ? { status: failure.status } : {}),
      ...(failure.serviceCode !== undefined ? { serviceCode: failure.serviceCode } : {}),
    });
    await sleep(delayMs, this.http.signal);
  }

  private retryDelayMs(failure: BlobRequestFailure, attempt: number): number {
    // A connection that dropped says the link is flaky, not that the service is busy: the first
    // retry of that request goes at once (after a little jitter) on a new connection, the block
    // already re-cut smaller. A second reset of the same request backs off like any failure.
    if (failure.retryCause === 'reset' && attempt === 1) return Math.round(Math.random() * FIRST_RESET_RETRY_JITTER_MS);
    return retryDelayMs(attempt, failure.details.retryAfterMs, {
      initialDelayMs: this.o.initialRetryDelayMs,
      maxDelayMs: this.o.maxRetryDelayMs,
      maxRetryAfterMs: this.o.maxRetryAfterMs,
    });
  }

  /** The error to throw for a failure that will not be retried. */
  private toUploadError(failure: BlobRequestFailure, attempts: number): UploadError {
    const status = failure.status;
    const details = { status, serviceCode: failure.serviceCode, attempts };
    const where = this.sas.displayUrl;
    let code: AstroErrorCode = ErrorCodes.UPLOAD_FAILED;
    let hint: string;
    if (status === 403) {
      const expired =
        (this.sas.expiresAt !== undefined && this.sas.expiresAt.getTime() <= Date.now()) ||
        /time frame|expir/i.test(failure.message);
      code = expired ? ErrorCodes.UPLOAD_SAS_EXPIRED : ErrorCodes.UPLOAD_REJECTED;
      hint = expired
        ? 'The SAS of the upload URL has expired: create a new deploy to get a fresh URL.'
        : `The storage service refused the SAS (permissions sp=${this.sas.permissions || '?'}): the URL is invalid, revoked or lacks a permission; get a fresh upload URL.`;
    } else if (status === 404) {
      code = ErrorCodes.UPLOAD_REJECTED;
      hint = 'The container or blob does not exist: check that the upload URL is the one Astro returned.';
    } else if (status !== undefined && status >= 400 && status < 500 && !failure.retryable) {
      code = ErrorCodes.UPLOAD_REJECTED;
      hint = 'The storage service rejected the request; this is not a transient fault.';
    } else {
      hint = `Gave up after ${attempts} attempt(s). Blocks already acknowledged are kept: running the same upload again resumes it.`;
    }
    return new UploadError(code, `Uploading to ${where} failed: ${failure.message}. ${hint}`, details, {
      cause: failure,
      retryable: code === ErrorCodes.UPLOAD_FAILED,
    });
  }

  private rethrowIfStopped(error: unknown): void {
    if (this.raw.signal?.aborted) throw toAbortError(this.raw.signal);
    if (!(error instanceof BlobRequestFailure)) throw error;
  }

  // ---------------------------------------------------------------- single Put Blob

  /** One Put Blob; undefined when the link calls for blocks instead. */
  private async putBlob(): Promise<UploadBlockBlobResult | undefined> {
    const size = this.src.size;
    // Read and hash once: a retry sends the same bytes (a changed file is caught before each try).
    const lease = await this.src.read(0, size, this.buffers);
    try {
      const data = lease.bytes;
      const contentMd5 = this.o.contentMd5 ? (await hashOffThread(data, 'md5')).toString('base64') : undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          await this.src.assertUnchanged();
          const res = await sendBlobRequest(this.http, {
            method: 'PUT',
            phase: 'put-blob',
            params: {},
            headers: {
              'x-ms-blob-type': 'BlockBlob',
              'x-ms-blob-content-type': this.o.contentType,
              ...(contentMd5 ? { 'content-md5': contentMd5 } : {}),
            },
            body: data,
            timeoutMs: this.tryTimeoutMs(size, 'put-blob'),
            onBodyBytes: (n) => (this.bytesSent += n),
          });
          this.bytesAcked = size;
          this.emit({ type: 'upload:progress', bytesAcked: size, totalBytes: size, bytesSent: this.bytesSent });
          // A Put Blob discards staged blocks, so a journal of an earlier blocks run is void now.
          if (this.o.journalDir !== false) {
            await rm(UploadJournal.pathFor(this.o.journalDir, this.sas.displayUrl), { force: true }).catch(() => {});
          }
          return this.finish(res, 1, 'single');
        } catch (error) {
          this.rethrowIfStopped(error);
          const failure = error as BlobRequestFailure;
          if (!failure.retryable) throw this.toUploadError(failure, attempt + 1);
          const fallBack = (failure.suggestsSmallerBlocks || failure.retryCause === 'reset') && size > this.o.minBlockSizeBytes;
          if (fallBack) {
            // Make the first blocks smaller than the payload that just failed.
            this.link.recordFailure(failure);
            this.link.capBlockBytes(size / 2, failure.retryCause === 'http-413' ? 'http-413' : failure.retryCause === 'reset' ? 'reset' : failure.retryCause === 'timeout' ? 'timeout' : 'http-408');
          }
          if (attempt + 1 > this.o.maxRetriesPerBlock) throw this.toUploadError(failure, attempt + 1);
          await this.waitBeforeRetry(failure, attempt + 1, 'put-blob');
          if (fallBack) return undefined;
        }
      }
    } finally {
      lease.release();
    }
  }

  // ---------------------------------------------------------------- blocks

  private async uploadBlocks(): Promise<UploadBlockBlobResult> {
    const size = this.src.size;
    await this.openJournal(size);
    if (this.o.resume) await this.findStagedBlocks(size);
    else if (this.journalRecorded.length > 0) await this.journal?.reset().catch(() => {});
    let fullRetryDone = false;
    for (;;) {
      this.pending = this.gaps(size);
      try {
        await this.sendPending();
      } finally {
        // What was acknowledged must be on disk before we give up or commit: it is what a re-run resumes from.
        const failed = await this.journal?.flush();
        if (failed) this.journalUnavailable(failed);
      }
      await this.src.assertUnchanged();
      const blocks = [...this.acked.values()].sort((a, b) => a.offset - b.offset);
      this.assertComplete(blocks, size);
      try {
        const res = await this.commit(blocks);
        await this.journal?.remove().catch(() => {});
        return this.finish(res, blocks.length, 'blocks');
      } catch (error) {
        if (!(error instanceof BlocksMissingError) || fullRetryDone) {
          if (error instanceof BlocksMissingError) {
            throw new UploadError(
              ErrorCodes.UPLOAD_FAILED,
              `Committing ${this.sas.displayUrl} failed twice because staged blocks vanished (${error.message}). Another upload to the same blob probably committed meanwhile; upload again when it is done.`,
              { status: 400, serviceCode: 'InvalidBlockList' },
              { retryable: true },
            );
          }
          throw error;
        }
        // Blocks we reused (or staged) are gone: another commit or a Put Blob discarded them, or
        // they expired. Send everything once more.
        fullRetryDone = true;
        this.emit({
          type: 'upload:warning',
          code: 'resumed-blocks-lost',
          message: `The service no longer has some staged blocks of ${this.sas.displayUrl}; sending every block again.`,
        });
        this.acked.clear();
        this.bytesAcked = 0;
        this.resumed = false;
        await this.journal?.reset().catch(() => {});
      }
    }
  }

  private journalUnavailable(error: unknown): void {
    void this.journal?.release().catch(() => {});
    this.journal = undefined;
    if (error instanceof JournalBusyError) {
      this.emit({
        type: 'upload:warning',
        code: 'journal-busy',
        message: `The resume journal is in use: ${error.message}. This upload goes on without it; two uploads of one blob at once may discard each other's staged blocks.`,
      });
      return;
    }
    this.emit({
      type: 'upload:warning',
      code: 'journal-unavailable',
      message: `The resume journal cannot be used (${(error as Error)?.message ?? String(error)}); the upload goes on without it.`,
    });
  }

  private async openJournal(size: number): Promise<string[]> {
    if (this.o.journalDir === false) return [];
    try {
      const { journal, recorded } = await UploadJournal.open(this.o.journalDir, this.sas.displayUrl, size);
      this.journal = journal;
      this.journalRecorded = recorded;
      return recorded;
    } catch (error) {
      this.journalUnavailable(error);
      return [];
    }
  }

  /** Reuse blocks an earlier run staged: from Get Block List when the SAS may read, else from the journal. */
  private async findStagedBlocks(size: number): Promise<void> {
    let candidates = this.journalRecorded;
    let via: 'journal' | 'block-list' = 'journal';
    if (sasAllowsRead(this.sas)) {
      const listed = await this.getBlockList();
      if (listed) {
        via = 'block-list';
        const foreign = listed.uncommitted.some((id) => Buffer.from(id, 'base64').length !== BLOCK_ID_BYTES);
        if (foreign && this.o.clearStaleBlocks) {
          await this.clearStaleBlocks();
          return;
        }
        candidates = [...listed.uncommitted, ...listed.committed];
      }
    }
    // Greedy by offset: keep the first candidate that starts where coverage ends and still matches.
    const refs = [...new Set(candidates)]
      .map((id) => ({ id, ref: decodeBlockId(id) }))
      .filter((c): c is { id: string; ref: NonNullable<typeof c.ref> } => !!c.ref && c.ref.length > 0 && c.ref.offset + c.ref.length <= size)
      .sort((a, b) => a.ref.offset - b.ref.offset || b.ref.length - a.ref.length);
    let coveredTo = -1;
    const recorded = new Set(this.journalRecorded);
    for (const { id, ref } of refs) {
      if (ref.offset < coveredTo) continue;
      throwIfAborted(this.raw.signal);
      const lease = await this.src.read(ref.offset, ref.length, this.buffers);
      let matches: boolean;
      try {
        matches = toBlockDigest(await hashOffThread(lease.bytes, ref.algorithm), ref.algorithm).equals(ref.digest);
      } finally {
        lease.release();
      }
      if (!matches) continue;
      this.acked.set(ref.offset, { id, offset: ref.offset, length: ref.length });
      this.bytesAcked += ref.length;
      coveredTo = ref.offset + ref.length;
      if (!recorded.has(id)) this.journal?.record(id);
    }
    if (this.acked.size > 0) {
      this.resumed = true;
      this.emit({ type: 'upload:resumed', via, blocksSkipped: this.acked.size, bytesSkipped: this.bytesAcked });
      this.emit({ type: 'upload:progress', bytesAcked: this.bytesAcked, totalBytes: size, bytesSent: this.bytesSent });
    }
  }

  /** Get Block List (all); undefined when it is not available (no blob yet, or refused). */
  private async getBlockList(): Promise<{ committed: string[]; uncommitted: string[] } | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await sendBlobRequest(this.http, {
          method: 'GET',
          phase: 'block-list',
          params: { comp: 'blocklist', blocklisttype: 'all' },
          headers: {},
          timeoutMs: this.tryTimeoutMs(0, 'block-list'),
          readBody: true,
        });
        const section = (name: string) => {
          const part = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(res.body)?.[1] ?? '';
          return [...part.matchAll(/<Name>([^<]*)<\/Name>/g)].map((m) => m[1] ?? '');
        };
        return { committed: section('CommittedBlocks'), uncommitted: section('UncommittedBlocks') };
      } catch (error) {
        this.rethrowIfStopped(error);
        const failure = error as BlobRequestFailure;
        // No blob at all: nothing staged, whatever the journal says.
        if (failure.status === 404) return { committed: [], uncommitted: [] };
        if (!failure.retryable || attempt >= Math.min(2, this.o.maxRetriesPerBlock)) {
          this.emit({
            type: 'upload:warning',
            code: 'block-list-unavailable',
            message: `Get Block List failed (${failure.message}); resuming from the local journal instead.`,
          });
          return undefined;
        }
        await this.waitBeforeRetry(failure, attempt + 1, 'block-list');
      }
    }
  }

  /**
   * Discard uncommitted blocks another client left with IDs of a different width (the service
   * refuses ours while they exist). Only a commit or a Put Blob discards them; an empty Put Blob
   * is the one that commits nothing of value, and our own commit replaces it right after.
   */
  private clearStaleBlocks(): Promise<void> {
    this.staleClearing ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await sendBlobRequest(this.http, {
            method: 'PUT',
            phase: 'clear-stale',
            params: {},
            headers: { 'x-ms-blob-type': 'BlockBlob' },
            body: new Uint8Array(0),
            timeoutMs: this.tryTimeoutMs(0, 'clear-stale'),
          });
          break;
        } catch (error) {
          this.rethrowIfStopped(error);
          const failure = error as BlobRequestFailure;
          if (!failure.retryable || attempt >= this.o.maxRetriesPerBlock) throw this.toUploadError(failure, attempt + 1);
          await this.waitBeforeRetry(failure, attempt + 1, 'clear-stale');
        }
      }
      // None of our blocks can have been staged while the other width was there (the service refused
      // them), so nothing acknowledged is lost; journal entries of earlier runs are.
      this.staleCleared = true;
      await this.journal?.reset().catch(() => {});
      this.emit({
        type: 'upload:warning',
        code: 'stale-blocks-cleared',
        message: `${this.sas.displayUrl} held uncommitted blocks of another client with a different ID width; they were discarded.`,
      });
    })();
    return this.staleClearing;
  }

  /** Byte ranges not covered by acknowledged blocks. */
  private gaps(size: number): PendingRange[] {
    const out: PendingRange[] = [];
    let at = 0;
    for (const b of [...this.acked.values()].sort((x, y) => x.offset - y.offset)) {
      if (b.offset > at) out.push({ offset: at, length: b.offset - at, attempts: 0 });
      at = Math.max(at, b.offset + b.length);
    }
    if (at < size) out.push({ offset: at, length: size - at, attempts: 0 });
    return out;
  }

  private requeue(range: PendingRange): void {
    const i = this.pending.findIndex((p) => p.offset > range.offset);
    if (i === -1) this.pending.push(range);
    else this.pending.splice(i, 0, range);
  }

  /** Cut the next block off the first pending range, at the current block size. */
  private cutBlock(): CutBlock {
    const range = this.pending[0]!;
    const remaining = this.pending.reduce((n, p) => n + p.length, 0);
    let length = Math.min(range.length, this.link.nextBlockBytes(remaining, this.blocksCut));
    // Do not leave a sliver behind: fold a small tail into this block.
    if (range.length - length < Math.min(this.o.minBlockSizeBytes, length / 4)) length = range.length;
    const block = { offset: range.offset, length, attempts: range.attempts, index: this.blocksCut++, epoch: this.link.epoch };
    if (length === range.length) this.pending.shift();
    else {
      range.offset += length;
      range.length -= length;
      // The failures were the cut-off block's: the bytes left behind have not been tried yet.
      range.attempts = 0;
    }
    return block;
  }

  /** Send every pending range as blocks, a few at a time, until all are acknowledged. */
  private async sendPending(): Promise<void> {
    const active = new Set<Promise<void>>();
    let fatal: { error: unknown } | undefined;
    while (!fatal) {
      while (!fatal && active.size < this.link.concurrency && this.pending.length > 0) {
        const block = this.cutBlock();
        const task: Promise<void> = this.sendBlock(block)
          .catch((error: unknown) => {
            if (!fatal) {
              fatal = { error };
              this.stop.abort();
            }
          })
          .finally(() => active.delete(task));
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

  private async sendBlock(block: CutBlock): Promise<void> {
    const lease = await this.src.read(block.offset, block.length, this.buffers);
    let retry: { failure: BlobRequestFailure; attempt: number } | undefined;
    try {
      retry = await this.sendLeasedBlock(block, lease.bytes);
    } finally {
      lease.release();
    }
    if (!retry) return;
    // The buffer went back first: a backoff lasts up to seconds, and the block is re-read (and
    // re-cut at the current size) when its turn comes again.
    await this.waitBeforeRetry(retry.failure, retry.attempt, 'put-block', block.index);
    this.requeue({ offset: block.offset, length: block.length, attempts: retry.attempt });
  }

  /** Send one block; resolves with the failure to back off from when it should be tried again. */
  private async sendLeasedBlock(block: CutBlock, data: Uint8Array): Promise<{ failure: BlobRequestFailure; attempt: number } | undefined> {
    const algorithm = this.o.contentMd5 ? 'md5' : 'sha256';
    const digest = toBlockDigest(await hashOffThread(data, algorithm), algorithm);
    const id = encodeBlockId({ offset: block.offset, length: block.length, digest, algorithm });
    const clearedBeforeSend = this.staleCleared;
    try {
      const res = await sendBlobRequest(this.http, {
        method: 'PUT',
        phase: 'put-block',
        params: { comp: 'block', blockid: id },
        headers: this.o.contentMd5 ? { 'content-md5': digest.toString('base64') } : {},
        body: data,
        timeoutMs: this.tryTimeoutMs(block.length, 'put-block'),
        onBodyBytes: (n) => (this.bytesSent += n),
      });
      this.link.recordSuccess(block.length, res.elapsedMs);
      if (!this.acked.has(block.offset)) this.bytesAcked += block.length;
      this.acked.set(block.offset, { id, offset: block.offset, length: block.length });
      this.journal?.record(id);
      this.emit({ type: 'upload:progress', bytesAcked: this.bytesAcked, totalBytes: this.src.size, bytesSent: this.bytesSent });
    } catch (error) {
      this.rethrowIfStopped(error);
      const failure = error as BlobRequestFailure;
      // Another client's uncommitted blocks with IDs of another width make the service refuse ours.
      // Clear them once; a block sent after that and still refused has a real problem.
      if (
        failure.status === 400 &&
        failure.serviceCode === 'InvalidBlobOrBlock' &&
        this.o.clearStaleBlocks &&
        !clearedBeforeSend &&
        block.attempts < this.o.maxRetriesPerBlock
      ) {
        await this.clearStaleBlocks();
        this.requeue({ offset: block.offset, length: block.length, attempts: block.attempts + 1 });
        return undefined;
      }
      const tooBigAtFloor = failure.retryCause === 'http-413' && block.length <= this.o.minBlockSizeBytes;
      const attempt = block.attempts + 1;
      if (!failure.retryable || tooBigAtFloor || attempt > this.o.maxRetriesPerBlock) {
        throw this.toUploadError(failure, attempt);
      }
      this.link.recordFailure(failure, block.epoch);
      return { failure, attempt };
    }
    return undefined;
  }

  /** Never commit a list that does not tile the payload exactly. */
  private assertComplete(blocks: AckedBlock[], size: number): void {
    let at = 0;
    for (const b of blocks) {
      if (b.offset !== at) break;
      at += b.length;
    }
    if (at !== size) {
      throw new UploadError(
        ErrorCodes.UPLOAD_FAILED,
        `Internal error: the acknowledged blocks of ${this.sas.displayUrl} do not cover the payload (${at} of ${size} bytes); nothing was committed.`,
      );
    }
  }

  private async commit(blocks: AckedBlock[]): Promise<BlobResponse> {
    const xml = `<?xml version="1.0" encoding="utf-8"?><BlockList>${blocks.map((b) => `<Latest>${b.id}</Latest>`).join('')}</BlockList>`;
    const body = Buffer.from(xml, 'utf8');
    for (let attempt = 0; ; attempt++) {
      try {
        return await sendBlobRequest(this.http, {
          method: 'PUT',
          phase: 'commit',
          params: { comp: 'blocklist' },
          headers: {
            'content-type': 'application/xml; charset=utf-8',
            'content-md5': md5(body).toString('base64'),
            'x-ms-blob-content-type': this.o.contentType,
          },
          body,
          timeoutMs: this.tryTimeoutMs(body.byteLength, 'commit'),
        });
      } catch (error) {
        this.rethrowIfStopped(error);
        const failure = error as BlobRequestFailure;
        if (failure.status === 400 && failure.serviceCode === 'InvalidBlockList') throw new BlocksMissingError(failure.message);
        // `<Latest>` makes a repeated commit harmless, so a lost answer is simply asked for again.
        if (!failure.retryable || attempt + 1 > this.o.maxRetriesPerBlock) throw this.toUploadError(failure, attempt + 1);
        await this.waitBeforeRetry(failure, attempt + 1, 'commit');
      }
    }
  }

  private finish(res: BlobResponse, blocks: number, mode: 'single' | 'blocks'): UploadBlockBlobResult {
    const raw = res.headers['x-ms-version-id'];
    const versionId = (Array.isArray(raw) ? raw[0] : raw) ?? '';
    const etagRaw = res.headers.etag;
    const etag = (Array.isArray(etagRaw) ? etagRaw[0] : etagRaw) ?? '';
    if (!versionId && this.o.requireVersionId) {
      throw new UploadError(
        ErrorCodes.UPLOAD_NO_VERSION_ID,
        `${this.sas.displayUrl} was committed but the response has no x-ms-version-id header, so there is no version to finalize the deploy with. The storage account must have blob versioning enabled (Astro's does; emulators such as Azurite do not). Pass requireVersionId: false to accept uploads without a version.`,
        { status: res.status, attempts: 1 },
      );
    }
    this.emit({ type: 'upload:committed', versionId, etag, bytes: this.src.size, blocks });
    return {
      versionId,
      etag,
      bytes: this.src.size,
      blocks,
      retries: this.retries,
      resumed: this.resumed,
      bytesSent: this.bytesSent,
      mode,
    };
  }
}

/** True for errors of this module that a later run may get past (a resumable failure). */
export function isResumableUploadError(error: unknown): boolean {
  return isAstroError(error, ErrorCodes.UPLOAD_FAILED) && error.retryable;
}
