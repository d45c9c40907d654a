/**
 * Incompressible pieces of a {@link parallelGzip} stream, written as deflate stored blocks.
 *
 * Deflating random-looking bytes (parquet, pickles, wheels, images) at level 6 costs about as
 * much CPU as deflating text, and gains nothing: zlib ends up emitting stored blocks anyway. A
 * piece that {@link looksIncompressible} is therefore framed as stored blocks here, which costs
 * one copy. The decision reads only the piece's bytes, so the same input still gives the same
 * output whatever the timing or concurrency. A wrong guess costs size, never correctness: every
 * stored block is valid deflate, and later pieces may still refer back into it (its bytes are in
 * the decompressor's window like any others).
 */
import { deflateRawSync } from 'node:zlib';

/** Largest payload of one stored block (LEN is 16 bits). */
const STORED_MAX = 65_535;
/** Bytes per stored block besides its payload: the block header byte, LEN and NLEN. */
const STORED_OVERHEAD = 5;
/** Samples taken from a piece, evenly spread, start and end included. */
const SAMPLES = 8;
/** Bytes per sample. */
const SAMPLE_BYTES = 4096;
/**
 * Order-0 entropy, in bits per byte, under which a sample counts as compressible. A 4 KiB sample
 * of uniformly random bytes measures ~7.95 (the estimate is biased low on short samples);
 * Huffman coding alone saves ~2% once the entropy drops to ~7.84, and text is far lower (4-6).
 */
const MIN_ENTROPY_BITS = 7.8;
/** A sample that level-1 deflate shrinks below this share of its size is compressible. */
const MAX_DEFLATED_SHARE = 0.98;

const counts = new Uint32Array(256);
/** log2 of 0..SAMPLE_BYTES, so that the entropy loop does no Math.log2 per symbol. */
const LOG2 = Float64Array.from({ length: SAMPLE_BYTES + 1 }, (_, i) => (i === 0 ? 0 : Math.log2(i)));

/** Order-0 entropy of `sample` (at most SAMPLE_BYTES long), in bits per byte. */
function entropyBits(sample: Buffer): number {
  counts.fill(0);
  for (let i = 0; i < sample.length; i++) counts[sample[i]!]!++;
  // H = log2(n) - sum(c * log2(c)) / n
  let sum = 0;
  for (let s = 0; s < 256; s++) sum += counts[s]! * LOG2[counts[s]!]!;
  return LOG2[sample.length]! - sum / sample.length;
}

/**
 * True when deflate would not shrink `piece`: every one of {@link SAMPLES} samples spread over it
 * has a byte entropy of at least {@link MIN_ENTROPY_BITS} and does not shrink by 2% at level 1
 * (which also finds repeats that entropy misses). The entropy check alone rejects text within a
 * few microseconds, so compressible pieces pay almost nothing for the test. Pieces shorter than
 * the samples together are never stored (they are the tail of the stream, cheap to deflate).
 */
export function looksIncompressible(piece: Buffer): boolean {
  if (piece.length < SAMPLES * SAMPLE_BYTES) return false;
  const step = Math.floor((piece.length - SAMPLE_BYTES) / (SAMPLES - 1));
  const samples: Buffer[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const sample = piece.subarray(i * step, i * step + SAMPLE_BYTES);
    if (entropyBits(sample) < MIN_ENTROPY_BITS) return false;
    samples.push(sample);
  }
  for (const sample of samples) {
    if (deflateRawSync(sample, { level: 1 }).length < sample.length * MAX_DEFLATED_SHARE) return false;
  }
  return true;
}

/**
 * `piece` as deflate stored blocks of up to 65,535 bytes, the last one final when `last`.
 * Starts on a byte boundary, as the stream does after the previous piece's sync flush; ends on
 * one too (stored blocks need no flush marker after them). Returns a new buffer: the piece may be
 * reused as soon as this returns. An empty non-final piece gives no bytes; an empty final piece
 * one empty final block.
 */
export function storedBlocks(piece: Buffer, last: boolean): Buffer {
  const blocks = Math.max(last ? 1 : 0, Math.ceil(piece.length / STORED_MAX));
  const out = Buffer.allocUnsafe(piece.length + blocks * STORED_OVERHEAD);
  let at = 0;
  for (let b = 0, from = 0; b < blocks; b++) {
    const len = Math.min(STORED_MAX, piece.length - from);
    // BFINAL in bit 0, BTYPE 00 (stored) in bits 1-2, then padding to the byte boundary.
    out[at] = last && b === blocks - 1 ? 1 : 0;
    out.writeUInt16LE(len, at + 1);
    out.writeUInt16LE(~len & 0xffff, at + 3);
    piece.copy(out, at + STORED_OVERHEAD, from, from + len);
    at += STORED_OVERHEAD + len;
    from += len;
  }
  return out;
}
