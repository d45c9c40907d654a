/**
 * Public types of the block-blob uploader: options, result and the events it emits.
 */
import type { DispatcherLike } from '../core/dispatcher.js';
import type { Logger } from '../core/logger.js';
import type { RetryOptions } from '../core/retry.js';

/** Why a request is retried. `http-<status>` for an HTTP answer, otherwise the transport failure. */
export type UploadRetryCause =
  | `http-${number}`
  /** The connection was reset or closed before the response arrived (ECONNRESET, EPIPE, socket closed). */
  | 'reset'
  /** The per-try timeout fired (the request stalled or the link is slower than expected). */
  | 'timeout'
  /** The connection could not be opened (ECONNREFUSED, DNS). */
  | 'connect';

/** Which request of the upload a retry concerns. */
export type UploadPhase = 'put-blob' | 'put-block' | 'commit' | 'block-list' | 'clear-stale';

/** The upload began. */
export interface UploadStartEvent {
  type: 'upload:start';
  /** Blob URL without its query string (no SAS). */
  blobUrl: string;
  totalBytes: number;
  /** `single`: one Put Blob; `blocks`: Put Block per chunk then one Put Block List. */
  mode: 'single' | 'blocks';
  blockSizeBytes: number;
  concurrency: number;
}

/** Blocks staged by an earlier run were found and will not be sent again. */
export interface UploadResumedEvent {
  type: 'upload:resumed';
  /** `journal`: the local journal of acknowledged blocks; `block-list`: the service's Get Block List. */
  via: 'journal' | 'block-list';
  blocksSkipped: number;
  bytesSkipped: number;
}

/** Progress after a block (or the single Put Blob) was acknowledged by the service. */
export interface UploadProgressEvent {
  type: 'upload:progress';
  /** Source bytes the service has acknowledged (including blocks skipped on resume). */
  bytesAcked: number;
  totalBytes: number;
  /** Payload bytes handed to the network so far, re-sends included (counted in chunks of up to 1 MiB). */
  bytesSent: number;
}

/** A request failed and will be tried again after `delayMs`. */
export interface UploadRetryEvent {
  type: 'upload:retry';
  phase: UploadPhase;
  /** Index of the block (in the order blocks were cut) for `put-block` retries. */
  blockIndex?: number;
  /** 1-based number of the retry about to happen for this block or request. */
  attempt: number;
  delayMs: number;
  cause: UploadRetryCause;
  /** HTTP status when the service or a proxy answered. */
  status?: number;
  /** `x-ms-error-code` when the service answered with one. */
  serviceCode?: string;
}

/** The size of blocks not yet sent changed. */
export interface UploadBlockSizeEvent {
  type: 'upload:block-size';
  fromBytes: number;
  toBytes: number;
  /** `http-408`, `timeout`, `reset`, `http-413`: shrink after a failure; `rate`: fit the measured rate; `growth`: grow after successes. */
  reason: 'http-408' | 'http-413' | 'timeout' | 'reset' | 'rate' | 'growth';
}

/** The number of blocks sent at the same time changed. */
export interface UploadConcurrencyEvent {
  type: 'upload:concurrency';
  from: number;
  to: number;
  reason: 'failure' | 'growth';
}

/**
 * Something went wrong that the upload worked around: `journal-unavailable` (the journal cannot be
 * written), `journal-busy` (another live upload of the same blob holds it), `stale-blocks-cleared`,
 * `resumed-blocks-lost` (blocks of an earlier run vanished; all are sent again),
 * `resumed-blocks-dropped` (blocks of an earlier run are too many to leave room, within the 50,000
 * a blob may commit, for the rest; all are sent again),
 * `blocks-lost-to-other-upload` (another upload of the same blob committed while this one staged,
 * discarding its blocks; all are staged again after a backoff, see `maxRestages`),
 * `block-list-unavailable`.
 */
export interface UploadWarningEvent {
  type: 'upload:warning';
  code: 'journal-unavailable' | 'journal-busy' | 'stale-blocks-cleared' | 'resumed-blocks-lost' | 'resumed-blocks-dropped' | 'blocks-lost-to-other-upload' | 'block-list-unavailable';
  message: string;
}

/** Put Block List (or the single Put Blob) succeeded. */
export interface UploadCommittedEvent {
  type: 'upload:committed';
  /** `x-ms-version-id` of the new blob version (empty when absent and `requireVersionId` is false). */
  versionId: string;
  etag: string;
  bytes: number;
  blocks: number;
}

/** Every event {@link uploadBlockBlob} emits, discriminated on `type`. */
export type UploadEvent =
  | UploadStartEvent
  | UploadResumedEvent
  | UploadProgressEvent
  | UploadRetryEvent
  | UploadBlockSizeEvent
  | UploadConcurrencyEvent
  | UploadWarningEvent
  | UploadCommittedEvent;

/** What the per-try timeout rule is given. */
export interface TryTimeoutContext {
  /** Body bytes of the request. */
  bytes: number;
  /** Measured rate of one upload stream, in bytes per second, once at least one block finished. */
  bytesPerSecond: number | undefined;
  phase: UploadPhase;
}

/** Options of {@link uploadBlockBlob}. */
export interface UploadBlockBlobOptions {
  /**
   * undici dispatcher (of undici 7 or 8) for every request (proxy agent, MockAgent, custom pool). @default an
   * `EnvHttpProxyAgent` when `HTTPS_PROXY`/`HTTP_PROXY` is set (honouring `NO_PROXY`), else the
   * global dispatcher
   */
  dispatcher?: DispatcherLike;
  /** Aborts the upload promptly: in-flight requests are cancelled and an `AstroAbortError` is thrown. */
  signal?: AbortSignal;
  /** Receives progress, retry and sizing events. Payloads are redacted; exceptions thrown here are ignored. */
  onEvent?: (event: UploadEvent) => void;
  /** Where ignored listener errors are noted (debug level). @default none */
  logger?: Logger;
  /** Size of the first blocks, in bytes. Later blocks adapt to the link. @default 2 MiB */
  blockSizeBytes?: number;
  /** Floor of the adaptive block size, in bytes. @default 256 KiB */
  minBlockSizeBytes?: number;
  /**
   * Cap of the adaptive block size, in bytes (also capped by the SAS `sv` limits). Blocks grow
   * toward it only as clean bytes prove the link (at most 5 % of the bytes acknowledged plus a
   * 32 MiB prior, divided by the resets seen + 1), so a reset or 408 wastes little; payloads over
   * 50,000 × this size use larger blocks as needed. @default 32 MiB
   */
  maxBlockSizeBytes?: number;
  /**
   * Most blocks in flight at once. The upload starts with 2 and adds one after every 4 clean blocks
   * (8 after a fault), halving on a 408 or timeout; on a fast link more streams hide each request's
   * turnaround. @default 8
   */
  concurrency?: number;
  /**
   * Most payload bytes in flight at once, in bytes: as blocks grow, fewer of them go together
   * (never fewer than one). Bounds the service's queue, and the memory a retry of a caller's byte
   * array pins, whatever the payload size. @default 64 MiB
   */
  maxBytesInFlight?: number;
  /**
   * How failed requests are retried (the SDK's one retry vocabulary), for uploads:
   * - `maxRetries`: failures in a row of one block (or of the single Put Blob, the commit, the
   *   stale-block clearing) that are retried before the upload fails (6). Bytes left behind when
   *   a failed block is re-cut start a count of their own. Get Block List is retried at most
   *   `min(2, maxRetries)` times, then the journal is used.
   * - `initialDelayMs`: backoff before the first retry, exponential with equal jitter after that
   *   (500). The first retry after a connection reset goes at once (within 100 ms).
   * - `maxDelayMs`: cap of the exponential backoff (8000).
   * - `maxRetryAfterMs`: longest `Retry-After` honoured (60000).
   *
   * 408, 413 (the block is re-cut smaller), 429 and 5xx except 501/505 are retried, as are
   * resets, refused connections and per-try timeouts.
   * @default { maxRetries: 6, initialDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 60000 }
   */
  retry?: RetryOptions;
  /**
   * Largest payload sent as one Put Blob; larger payloads are staged as blocks. A single Put Blob
   * that hits a 408, timeout or reset falls back to blocks. A file above 8 MiB is hashed in one
   * pass and then streamed from disk in its Put Blob (memory stays at a few MiB whatever its
   * size), so only its `Content-MD5` stops a file rewritten mid-request from being stored: with
   * `contentMd5: false` such a file is staged as blocks instead. @default 4 MiB
   */
  singleShotMaxBytes?: number;
  /**
   * Time one request may run, in milliseconds: a number, or a rule given the body size and the
   * measured per-stream rate. More than 0 and at most 2^31-1 (about 24.8 days, the longest a Node
   * timer keeps), else `ASTRO_CONFIG_INVALID_OPTION`: a number at the start, a rule's answer when
   * it is asked. @default max(20 s, 3 × bytes / rate) with rate = the measured per-stream rate, or
   * 256 KiB/s until one block has finished; 90 s for the commit.
   */
  tryTimeoutMs?: number | ((context: TryTimeoutContext) => number);
  /**
   * Each block is sized so that it takes about this long at the measured per-stream rate, which
   * keeps requests well under the time budget of proxies that answer 408. Halved (down to 1 s)
   * whenever a 408 or timeout shows the budget is shorter. @default 8000
   */
  targetBlockDurationMs?: number;
  /**
   * Folder of the resume journal (acknowledged block IDs per blob URL, no SAS). `false` disables it.
   * @default `$XDG_CACHE_HOME/astro-deploy-sdk/uploads`, else `~/.cache/astro-deploy-sdk/uploads`
   */
  journalDir?: string | false;
  /** Look for blocks of an earlier run (journal, or Get Block List when the SAS has `r`). @default true */
  resume?: boolean;
  /**
   * Fail with `ASTRO_UPLOAD_NO_VERSION_ID` when the commit response has no `x-ms-version-id`
   * (Astro needs it as `dagTarballVersion`). @default true
   */
  requireVersionId?: boolean;
  /**
   * Send `Content-MD5` with every block (and the single Put Blob) so the service rejects a block
   * corrupted on the way. Costs one MD5 pass over the payload (about 0.5 GB/s per core); turn it
   * off only where TLS end to end already guarantees integrity and CPU is the bottleneck.
   * @default true
   */
  contentMd5?: boolean;
  /** `x-ms-blob-content-type` of the blob. @default 'application/octet-stream' */
  contentType?: string;
  /**
   * How many times the upload stages every block again when its commit finds some of its staged
   * blocks gone. Within one run that happens only when another upload of the same blob (another
   * process or machine deploying to the same deployment, astro-cli#1586) committed meanwhile, which
   * discards every block it did not list. Each round waits a jittered backoff that doubles from
   * `retry.initialDelayMs` (up to `retry.maxDelayMs`), so racing uploaders fall out of step; a
   * commit always holds exactly this upload's bytes or fails, never a mix. When the rounds are
   * spent, the upload fails with `ASTRO_UPLOAD_CONFLICT`. `0` fails at the first such commit.
   * @default 6
   */
  maxRestages?: number;
  /**
   * When a Put Block is refused because the blob holds uncommitted blocks with IDs of another width
   * (left by another client), discard them with an empty Put Blob and go on. @default true
   */
  clearStaleBlocks?: boolean;
}

/** Outcome of {@link uploadBlockBlob}. */
export interface UploadBlockBlobResult {
  /** `x-ms-version-id` of the committed version (Astro's `dagTarballVersion`); empty only when `requireVersionId` is false and the service sent none. */
  versionId: string;
  /** ETag of the committed blob. */
  etag: string;
  /** Size of the blob, in bytes. */
  bytes: number;
  /** Blocks committed (1 for a single Put Blob). */
  blocks: number;
  /** Requests retried in total. */
  retries: number;
  /** Times every block was staged again because another upload of the blob committed meanwhile (see `maxRestages`). */
  restages: number;
  /** True when blocks of an earlier run were reused. */
  resumed: boolean;
  /** Payload bytes handed to the network, re-sends included (compare with `bytes` for overhead). */
  bytesSent: number;
  /** `single` (one Put Blob) or `blocks`. */
  mode: 'single' | 'blocks';
}
