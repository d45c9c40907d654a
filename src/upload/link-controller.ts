/**
 * Adapts block size and concurrency to the link, AIMD-style (like TCP's congestion control):
 *
 * - Block size. Every finished block gives a per-stream rate sample; blocks are sized to take about
 *   `targetBlockDurationMs` at that rate, so a slow link gets small blocks before any proxy times a
 *   request out. Before the first fault the size may double per success (slow start); after a 408,
 *   timeout, 413 or reset it is halved (never below the floor) and then grows back by only 25 % per
 *   two clean successes. A 408 or timeout also caps the target duration at half the time the failed
 *   request ran, which is an estimate of the hidden proxy's budget.
 * - Concurrency. Starts at 2 (or the cap if lower), grows by one after every 4 clean successes (8
 *   after a fault) up to the cap, halves on a 408 or timeout: parallel streams share one uplink, so
 *   on a slow link more of them only make each request slower and likelier to hit the budget. When
 *   a stream is added, the per-stream rate estimate is scaled down as if the uplink were full and
 *   the block size re-fitted at once (on a 2 MiB/s link with a 10 s proxy budget, growing to 7
 *   streams with blocks sized for 6 ran into 408s before this).
 * - Resets. A reset loses the bytes the block had sent, about half a block on average. With the
 *   link's mean bytes between resets estimated as (bytes acknowledged + a prior of
 *   {@link RESET_PRIOR_BYTES}) / (resets + 1), blocks are capped at {@link RESET_LOSS_SHARE} of
 *   it, which keeps the expected re-sent share near half that. The prior matters before the first
 *   reset: without it, blocks reached the 4 MiB cap at once and a link resetting every 32 MiB
 *   re-sent 5 % of a 64 MiB payload on average (7 of 12 seeds above 5 %; with it: 2.6 %, 2 of 12).
 * - Large blocks. On a clean loopback the service's CPU per request (~7 ms in Azurite, measured)
 *   is what fewer, larger blocks save; the cap is 32 MiB by default and the driver bounds the bytes
 *   in flight (64 MiB), so concurrency falls as blocks grow and memory does not.
 * - The block size never drops so low that the remaining bytes would need more than the 50,000
 *   blocks a blob may commit, counting those kept from an earlier run.
 */
import type { BlobRequestFailure } from './blob-http.js';
import type { UploadBlockSizeEvent, UploadConcurrencyEvent } from './types.js';

const KIB = 1024;
/** Committed blocks a blob may have. */
export const MAX_COMMITTED_BLOCKS = 50_000;
/** Blocks an upload plans at most: the limit less a margin for rounding. */
export const MAX_PLANNED_BLOCKS = MAX_COMMITTED_BLOCKS - 16;
/** Sizes are kept on this grid (when above it) so logs stay readable. */
const GRID_BYTES = 64 * KIB;
/** Cap of the block size as a share of the mean bytes seen between resets. */
export const RESET_LOSS_SHARE = 0.05;
/**
 * The reset estimate starts as if one reset had been seen after this many bytes, so that blocks
 * grow only as clean bytes prove the link (a link with no resets lifts the ceiling to 4 MiB after
 * ~50 MiB, to the 32 MiB default cap after ~600 MiB; one that resets every 32 MiB keeps blocks
 * near 1.6 MiB from the start).
 */
export const RESET_PRIOR_BYTES = 32 * 1024 * 1024;
/** Rate assumed before any block has finished, in bytes per second (a slow DSL uplink). */
export const ASSUMED_RATE_BYTES_PER_SECOND = 256 * KIB;

/** Inputs of a {@link LinkController}. */
export interface LinkControllerOptions {
  initialBlockBytes: number;
  minBlockBytes: number;
  maxBlockBytes: number;
  maxConcurrency: number;
  targetBlockDurationMs: number;
  onBlockSize: (event: UploadBlockSizeEvent) => void;
  onConcurrency: (event: UploadConcurrencyEvent) => void;
}

function onGrid(bytes: number): number {
  return bytes > 2 * GRID_BYTES ? Math.floor(bytes / GRID_BYTES) * GRID_BYTES : Math.max(1, Math.floor(bytes));
}

/** Current block size, concurrency and rate estimate of one upload. */
export class LinkController {
  blockBytes: number;
  concurrency: number;
  /** Smoothed per-stream rate in bytes per second; undefined until a block finished. */
  rateBytesPerSecond: number | undefined;
  private targetMs: number;
  private faulted = false;
  private streak = 0;
  private bytesAcked = 0;
  private resets = 0;
  /**
   * Bumped on every shrink. Blocks cut before a shrink that fail afterwards were sized for the old
   * conditions: like TCP's one reduction per window, they do not shrink the size again.
   */
  epoch = 0;

  constructor(private readonly o: LinkControllerOptions) {
    this.blockBytes = onGrid(Math.min(o.maxBlockBytes, Math.max(o.minBlockBytes, o.initialBlockBytes)));
    this.concurrency = Math.max(1, Math.min(2, o.maxConcurrency));
    this.targetMs = o.targetBlockDurationMs;
  }

  /**
   * Size of the next block given what is still to send and how many blocks the commit already
   * lists (kept from an earlier run, acknowledged, or in flight).
   */
  nextBlockBytes(remainingBytes: number, blocksListed: number): number {
    const blocksLeft = Math.max(1, MAX_PLANNED_BLOCKS - blocksListed);
    const floor = Math.ceil(remainingBytes / blocksLeft);
    return Math.max(1, Math.min(remainingBytes, Math.max(this.blockBytes, floor)));
  }

  /** A block of `bytes` was acknowledged after `elapsedMs`. */
  recordSuccess(bytes: number, elapsedMs: number): void {
    // Tiny blocks and sub-millisecond answers say more about latency than about the link.
    if (bytes >= 64 * KIB && elapsedMs > 0) {
      const sample = (bytes * 1000) / elapsedMs;
      this.rateBytesPerSecond = this.rateBytesPerSecond === undefined ? sample : 0.5 * this.rateBytesPerSecond + 0.5 * sample;
    }
    this.streak += 1;
    this.bytesAcked += bytes;
    const rateFit = this.rateBytesPerSecond === undefined ? Infinity : (this.rateBytesPerSecond * this.targetMs) / 1000;
    // The reset ceiling only rises with clean bytes, so it bounds growth; a slower link shrinks.
    const fit = Math.min(rateFit, this.resetCeiling());
    if (rateFit < this.blockBytes * 0.9) {
      this.setBlockBytes(fit, 'rate');
    } else if (!this.faulted || this.streak % 2 === 0) {
      const grown = Math.min(this.blockBytes * (this.faulted ? 1.25 : 2), fit);
      if (grown > this.blockBytes * 1.05) this.setBlockBytes(grown, 'growth');
    }
    const every = this.faulted ? 8 : 4;
    if (this.streak % every === 0 && this.concurrency < this.o.maxConcurrency) {
      const from = this.concurrency;
      this.setConcurrency(from + 1, 'growth');
      // Assume the uplink is the limit until samples say otherwise: one more stream takes its share
      // from the others, so each block runs longer. Re-fit the size now, or the blocks cut next
      // (at the old per-stream rate) would outlast a proxy's budget.
      if (this.rateBytesPerSecond !== undefined) {
        this.rateBytesPerSecond *= from / (from + 1);
        const refit = (this.rateBytesPerSecond * this.targetMs) / 1000;
        if (refit < this.blockBytes) this.setBlockBytes(refit, 'rate');
      }
    }
  }

  /**
   * A request failed with `failure` after running `failure.elapsedMs`. `epochAtStart` is
   * {@link LinkController.epoch} when the failed block was cut (omit it for a fresh request).
   */
  recordFailure(failure: BlobRequestFailure, epochAtStart = this.epoch): void {
    this.streak = 0;
    const cause = failure.retryCause;
    if (cause === 'reset') this.resets += 1;
    if (epochAtStart < this.epoch) return;
    if (cause === 'http-408' || cause === 'timeout') {
      this.faulted = true;
      // The request ran this long before something gave up on it: keep blocks well inside that.
      if (failure.elapsedMs > 0) this.targetMs = Math.max(1000, Math.min(this.targetMs, failure.elapsedMs / 2));
      this.setBlockBytes(this.blockBytes / 2, cause);
      if (this.concurrency > 1) this.setConcurrency(Math.max(1, Math.floor(this.concurrency / 2)), 'failure');
    } else if (cause === 'http-413') {
      this.faulted = true;
      this.setBlockBytes(this.blockBytes / 4, 'http-413');
    } else if (cause === 'reset') {
      // A reset loses what the block had sent: smaller blocks lose less on a flaky link.
      this.faulted = true;
      this.setBlockBytes(Math.min(this.blockBytes / 2, this.resetCeiling()), 'reset');
    }
  }

  /** Largest block the estimated reset rate allows. */
  private resetCeiling(): number {
    return (RESET_LOSS_SHARE * (this.bytesAcked + RESET_PRIOR_BYTES)) / (this.resets + 1);
  }

  /** Make blocks at most `bytes` long (after a whole payload failed in one request). */
  capBlockBytes(bytes: number, reason: UploadBlockSizeEvent['reason']): void {
    if (bytes < this.blockBytes) this.setBlockBytes(bytes, reason);
  }

  private setBlockBytes(bytes: number, reason: UploadBlockSizeEvent['reason']): void {
    const next = onGrid(Math.min(this.o.maxBlockBytes, Math.max(this.o.minBlockBytes, bytes)));
    if (next === this.blockBytes) return;
    const from = this.blockBytes;
    if (next < from) this.epoch += 1;
    this.blockBytes = next;
    this.o.onBlockSize({ type: 'upload:block-size', fromBytes: from, toBytes: next, reason });
  }

  private setConcurrency(to: number, reason: UploadConcurrencyEvent['reason']): void {
    if (to === this.concurrency) return;
    const from = this.concurrency;
    this.concurrency = to;
    this.o.onConcurrency({ type: 'upload:concurrency', from, to, reason });
  }
}
