/**
 * Deterministic, parallel gzip for the bundle, built on `node:zlib`.
 *
 * One zlib deflate stream runs on one thread, so `createGzip()` caps packing at the speed of a
 * single core, and compression is what bounds bundling (GNU `tar -czf` gets a second core for
 * free: tar and gzip are two processes). So the tar stream is cut into fixed 1 MiB pieces that are
 * deflated concurrently on the libuv thread pool, each primed with the 32 KiB that precede it
 * (as pigz does, so the ratio stays that of a single stream) and ended with a sync flush; the
 * last one ends the deflate stream. The pieces concatenate into ONE ordinary gzip member, which
 * every gunzip reads, with the CRC-32 and size computed over the whole input.
 *
 * The header is written here: no file name, MTIME 0, and OS 255 ("unknown", as Go's
 * `compress/gzip` writes) instead of zlib's compile-time OS code, so the same tar bytes give the
 * same `.tar.gz` bytes on every platform with the same zlib. Piece boundaries depend only on byte
 * offsets, never on timing, so concurrency does not affect the output.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { constants, crc32, deflateRaw, type ZlibOptions } from 'node:zlib';

/** Uncompressed bytes per independently deflated piece. */
export const PIECE_BYTES = 1024 * 1024;
/** Output buffer for a piece that may not compress at all (stored blocks add a few bytes per 16 KiB). */
const MAX_OUT_BYTES = PIECE_BYTES + 64 * 1024;
/** Smallest output buffer given to zlib for a piece. */
const MIN_OUT_BYTES = 64 * 1024;
/** Deflate's window: how much of the previous piece primes the next one. */
const WINDOW_BYTES = 32 * 1024;
/** OS value written into the header: 255 = unknown. */
export const GZIP_OS_UNKNOWN = 255;

function deflatePiece(piece: Buffer, options: ZlibOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => deflateRaw(piece, options, (err, out) => (err ? reject(err) : resolve(out))));
}

function gzipHeader(level: number): Buffer {
  // XFL as zlib sets it: 2 = best compression, 4 = fastest, 0 otherwise.
  const xfl = level === 9 ? 2 : level < 2 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNKNOWN]);
}

/**
 * A `stream.pipeline` stage that gzips its input with `concurrency` pieces in flight.
 * @param level zlib level, 0-9.
 * @param concurrency pieces deflated at once (thread-pool jobs). @default 2
 */
export function parallelGzip(level: number, concurrency = 2): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* gzip(source) {
    yield gzipHeader(level);
    let crc = 0;
    let total = 0;
    // The last WINDOW_BYTES of input, copied (zlib copies a dictionary when the stream is created,
    // so this buffer can be refilled as soon as the next piece has started).
    const window = Buffer.allocUnsafe(WINDOW_BYTES);
    let windowBytes = 0;
    // zlib allocates the whole output buffer of every piece up front, and it stays allocated
    // until the GC finds it: sized for incompressible input, that is ~1 MiB of external memory
    // per MiB of tar even for text that deflates to half its size. So each buffer is sized from
    // the last piece's output plus a margin (about 7 MB less peak RSS for 80,000 small files).
    // A short guess only costs a second output chunk (zlib continues in a new buffer); the
    // compressed bytes do not depend on the buffer size.
    let lastOutBytes = MAX_OUT_BYTES;
    // Pieces are recycled once their deflate job has finished: at most `concurrency + 1` of them
    // ever exist, instead of one fresh 1 MiB buffer per MiB of input left for the GC to find.
    const free: Buffer[] = [];
    const jobs: Array<{ piece: Buffer; out: Promise<Buffer> }> = [];
    const start = (piece: Buffer, length: number, last: boolean) => {
      const input = piece.subarray(0, length);
      crc = crc32(input, crc);
      total += length;
      // One output buffer large enough for the whole piece (as a rule): one thread-pool round trip per piece.
      const chunkSize = Math.min(MAX_OUT_BYTES, Math.max(MIN_OUT_BYTES, lastOutBytes + (lastOutBytes >> 3) + 16 * 1024));
      const options: ZlibOptions = { level, finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH, chunkSize };
      if (windowBytes > 0) options.dictionary = window.subarray(0, windowBytes);
      const out = deflatePiece(input, options);
      out.catch(() => undefined); // awaited in order below; this only avoids an unhandled rejection on early exit
      jobs.push({ piece, out });
      if (length >= WINDOW_BYTES) {
        input.copy(window, 0, length - WINDOW_BYTES);
        windowBytes = WINDOW_BYTES;
      } else {
        const keep = Math.min(windowBytes, WINDOW_BYTES - length);
        window.copy(window, 0, windowBytes - keep, windowBytes);
        input.copy(window, keep);
        windowBytes = keep + length;
      }
    };
    const finish = async (): Promise<Buffer> => {
      const job = jobs.shift()!;
      const out = await job.out;
      lastOutBytes = out.length;
      free.push(job.piece);
      return out;
    };
    // Every input is copied into the current piece before the next one is requested, so the
    // source may reuse the buffer it yielded (the tar writer does).
    let piece: Buffer = Buffer.allocUnsafe(PIECE_BYTES);
    let filled = 0;
    for await (const input of source) {
      let offset = 0;
      while (offset < input.length) {
        const n = Math.min(input.length - offset, PIECE_BYTES - filled);
        input.copy(piece, filled, offset, offset + n);
        filled += n;
        offset += n;
        if (filled === PIECE_BYTES) {
          start(piece, PIECE_BYTES, false);
          while (jobs.length >= concurrency) yield await finish();
          piece = free.pop() ?? Buffer.allocUnsafe(PIECE_BYTES);
          filled = 0;
        }
      }
    }
    start(piece, filled, true);
    while (jobs.length > 0) yield await finish();
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(total % 0x100000000, 4);
    yield trailer;
  };
}

/** Pass-through that computes the SHA-256 and size of what passes (the `.tar.gz` bytes). */
export class OutputMeter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  /** Bytes passed so far. */
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    done(null, chunk);
  }

  /** Hex SHA-256 of everything that passed (call once, after the stream finished). */
  digest(): string {
    return this.hash.digest('hex');
  }
}
