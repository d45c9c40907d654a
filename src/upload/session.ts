/**
 * What the phases of one upload share: the request context (SAS, dispatcher, the operation
 * scope's signal), the link controller, the event emitter, counters, acknowledged blocks and the
 * journal, plus the few helpers every phase needs (a retry loop that reports `upload:retry`, the
 * per-try timeout, the final result).
 */
import { emitterFor, type Emit } from '../core/emitter.js';
import { ErrorCodes, UploadError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { withRetries, type Attempt, type RetryInfo, type RetryPolicy } from '../core/retry.js';
import type { OperationScope } from '../core/scope.js';
import { BlobRequestFailure, type BlobHttpContext, type BlobResponse } from './blob-http.js';
import { BufferPool } from './buffer-pool.js';
import { JournalBusyError, type UploadJournal } from './journal.js';
import { LinkController } from './link-controller.js';
import { tryTimeoutMs, type ResolvedOptions } from './options.js';
import type { AckedBlock } from './planner.js';
import type { BlobSas } from './sas.js';
import type { UploadSource } from './source.js';
import type { UploadBlockBlobOptions, UploadBlockBlobResult, UploadEvent, UploadPhase, UploadRetryCause } from './types.js';
import { toUploadError } from './upload-error.js';

/** Shared state of one upload. */
export class UploadSession {
  readonly http: BlobHttpContext;
  readonly link: LinkController;
  readonly emit: Emit<UploadEvent>;
  readonly logger: Logger | undefined;
  /** Block buffers reused across blocks (fresh memory is slow to touch; see buffer-pool.ts). */
  readonly buffers: BufferPool;
  retries = 0;
  /** Times every block was staged again because another upload's commit discarded ours. */
  restages = 0;
  bytesSent = 0;
  bytesAcked = 0;
  resumed = false;
  /** Acknowledged blocks by offset. */
  readonly acked = new Map<number, AckedBlock>();
  journal: UploadJournal | undefined;
  /** Block IDs the journal held when it was opened. */
  journalRecorded: string[] = [];
  /** Set once uncommitted blocks of another client were discarded. */
  staleCleared = false;
  staleClearing: Promise<void> | undefined;

  constructor(
    readonly sas: BlobSas,
    readonly src: UploadSource,
    readonly o: ResolvedOptions,
    readonly scope: OperationScope,
    raw: Pick<UploadBlockBlobOptions, 'dispatcher' | 'onEvent' | 'logger'>,
  ) {
    this.logger = raw.logger;
    this.buffers = new BufferPool(o.maxBytesInFlight);
    this.emit = emitterFor(raw.onEvent, raw.logger);
    this.http = { sas, dispatcher: raw.dispatcher, signal: scope.signal };
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

  /** Fires when the caller aborts or a part of the upload failed for good. */
  get signal(): AbortSignal {
    return this.scope.signal;
  }

  tryTimeoutMs(bytes: number, phase: UploadPhase): number {
    return tryTimeoutMs(this.o.tryTimeoutMs, { bytes, bytesPerSecond: this.link.rateBytesPerSecond, phase });
  }

  /** Count a retry about to happen and report it as an `upload:retry` event. */
  noteRetry(failure: BlobRequestFailure, attempt: number, delayMs: number, phase: UploadPhase, blockIndex?: number): void {
    this.retries += 1;
    this.emit({
      type: 'upload:retry',
      phase,
      ...(blockIndex !== undefined ? { blockIndex } : {}),
      attempt,
      delayMs,
      // Only status, connect, reset and timeout failures are ever retried.
      cause: failure.retryCause as UploadRetryCause,
      ...(failure.status !== undefined ? { status: failure.status } : {}),
      ...(failure.serviceCode !== undefined ? { serviceCode: failure.serviceCode } : {}),
    });
  }

  /**
   * Run one request under `policy` (the kernel's loop): retries are counted and reported as
   * `upload:retry` events; the error of the last try comes out unchanged.
   */
  withRetries<T>(phase: UploadPhase, policy: RetryPolicy, fn: (attempt: Attempt) => Promise<T>): Promise<T> {
    return withRetries(fn, {
      policy,
      signal: this.signal,
      logger: this.logger,
      onRetry: (info: RetryInfo) => {
        if (info.error instanceof BlobRequestFailure) this.noteRetry(info.error, info.attempt, info.delayMs, phase);
      },
    });
  }

  /** The typed error for a request given up on after `attempts` tries. */
  uploadError(failure: BlobRequestFailure, attempts: number): UploadError {
    return toUploadError(this.sas, failure, attempts);
  }

  progress(): void {
    this.emit({ type: 'upload:progress', bytesAcked: this.bytesAcked, totalBytes: this.src.size, bytesSent: this.bytesSent });
  }

  /** The journal cannot be used (busy or unwritable): go on without it and say so. */
  journalUnavailable(error: unknown): void {
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
      message: `The resume journal cannot be used (${(error as Error | undefined)?.message ?? String(error)}); the upload goes on without it.`,
    });
  }

  /** The result of a committed upload (and its `upload:committed` event). */
  finish(res: BlobResponse, blocks: number, mode: 'single' | 'blocks'): UploadBlockBlobResult {
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
    return { versionId, etag, bytes: this.src.size, blocks, retries: this.retries, restages: this.restages, resumed: this.resumed, bytesSent: this.bytesSent, mode };
  }
}
