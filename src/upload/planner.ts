/**
 * The block planner: which bytes still have to go, cut into blocks. Pure (no I/O, no clock): it
 * is given the acknowledged blocks and a block-size rule and answers with blocks to send; a block
 * that failed comes back to it and is re-cut at whatever size the link allows by then.
 */
import { decodeBlockId, encodeBlockId, type BlockDigestAlgorithm, type BlockRef } from './block-id.js';

/** A byte range still to send, with the failures in a row its bytes have had so far. */
export interface PendingRange {
  offset: number;
  length: number;
  /** Failures in a row of these bytes (0 for bytes never tried). */
  attempts: number;
}

/** A block cut from a pending range: its index in cut order and the link epoch it was sized in. */
export interface PlannedBlock extends PendingRange {
  index: number;
  epoch: number;
}

/** A block the service acknowledged (or that an earlier run staged and still matches). */
export interface AckedBlock {
  id: string;
  offset: number;
  length: number;
}

/** Byte ranges of `[0, size)` not covered by `blocks`, each with no failures yet. */
export function gaps(blocks: Iterable<{ offset: number; length: number }>, size: number): PendingRange[] {
  const out: PendingRange[] = [];
  let at = 0;
  for (const b of [...blocks].sort((x, y) => x.offset - y.offset)) {
    if (b.offset > at) out.push({ offset: at, length: b.offset - at, attempts: 0 });
    at = Math.max(at, b.offset + b.length);
  }
  if (at < size) out.push({ offset: at, length: size - at, attempts: 0 });
  return out;
}

/** Cuts pending ranges into blocks, first bytes first. */
export class BlockPlanner {
  private pending: PendingRange[] = [];
  /** Blocks cut so far, over the whole upload: the index of the next block. */
  blocksCut = 0;
  /**
   * Blocks the commit lists as planned now (the service allows 50,000): those kept when the plan
   * started (staged by an earlier run), plus those cut since, less those handed back to be cut
   * again. The size rule is given it, so that what is left fits in the blocks left.
   */
  blocksListed = 0;

  constructor(
    /** No block shorter than this is left behind as a tail (it is folded into the block before it). */
    private readonly minBlockBytes: number,
  ) {}

  /**
   * Start over with `ranges` to send, beside `kept` blocks already staged that the commit lists
   * too (the block index goes on).
   */
  plan(ranges: PendingRange[], kept = 0): void {
    this.pending = ranges.map((r) => ({ ...r }));
    this.blocksListed = kept;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Bytes not yet cut into blocks. */
  get remainingBytes(): number {
    return this.pending.reduce((n, p) => n + p.length, 0);
  }

  /**
   * Cut the next block off the first pending range. `blockBytes(remaining, blocksListed)` is the
   * size the link wants now; a tail shorter than min(floor, a quarter of the block) is folded in.
   */
  cut(blockBytes: (remainingBytes: number, blocksListed: number) => number, epoch: number): PlannedBlock {
    const range = this.pending[0];
    if (!range) throw new Error('BlockPlanner.cut: nothing pending');
    let length = Math.min(range.length, blockBytes(this.remainingBytes, this.blocksListed));
    if (range.length - length < Math.min(this.minBlockBytes, length / 4)) length = range.length;
    const block: PlannedBlock = { offset: range.offset, length, attempts: range.attempts, index: this.blocksCut++, epoch };
    this.blocksListed += 1;
    if (length === range.length) this.pending.shift();
    else {
      range.offset += length;
      range.length -= length;
      // The failures were the cut-off block's: the bytes left behind have not been tried yet.
      range.attempts = 0;
    }
    return block;
  }

  /** Put a failed block's range back, in offset order, with its failures in a row: it is no longer listed. */
  requeue(range: PendingRange): void {
    this.blocksListed = Math.max(0, this.blocksListed - 1);
    const copy = { offset: range.offset, length: range.length, attempts: range.attempts };
    const i = this.pending.findIndex((p) => p.offset > copy.offset);
    if (i === -1) this.pending.push(copy);
    else this.pending.splice(i, 0, copy);
  }
}

/** The ID of a block: it names its offset, length and digest (see `block-id.ts`). */
export function blockIdOf(block: { offset: number; length: number }, digest: Buffer, algorithm: BlockDigestAlgorithm): string {
  return encodeBlockId({ offset: block.offset, length: block.length, digest, algorithm });
}

/**
 * Blocks of an earlier run worth checking, in the order to check them: ours, non-empty, inside a
 * payload of `size` bytes, each ID once, by offset and longest first. The resume step keeps, greedily,
 * each one that starts where the kept ones end and whose bytes still match.
 */
export function resumeCandidates(ids: Iterable<string>, size: number): Array<{ id: string; ref: BlockRef }> {
  const out: Array<{ id: string; ref: BlockRef }> = [];
  for (const id of new Set(ids)) {
    const ref = decodeBlockId(id);
    if (ref && ref.length > 0 && ref.offset + ref.length <= size) out.push({ id, ref });
  }
  return out.sort((a, b) => a.ref.offset - b.ref.offset || b.ref.length - a.ref.length);
}

/**
 * The blocks to commit, in offset order, or the number of bytes they cover from the start when
 * they do not tile `[0, size)` exactly (never commit such a list).
 */
export function commitOrder(acked: Iterable<AckedBlock>, size: number): { blocks: AckedBlock[]; coveredBytes: number; complete: boolean } {
  const blocks = [...acked].sort((a, b) => a.offset - b.offset);
  let at = 0;
  for (const b of blocks) {
    if (b.offset !== at) break;
    at += b.length;
  }
  return { blocks, coveredBytes: at, complete: at === size };
}

/** The Put Block List body: every block as `<Latest>`, so a repeated commit is harmless. */
export function blockListXml(blocks: ReadonlyArray<{ id: string }>): string {
  return `<?xml version="1.0" encoding="utf-8"?><BlockList>${blocks.map((b) => `<Latest>${b.id}</Latest>`).join('')}</BlockList>`;
}
