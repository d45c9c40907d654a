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
    let window: Buffer | undefined;
    const jobs: Array<Promise<Buffer>> = [];
    const start = (piece: Buffer, last: boolean) => {
      crc = crc32(piece, crc);
      total += piece.length;
      // One output buffer large enough for the whole piece: one thread-pool round trip per piece.
      const options: ZlibOptions = { level, finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH, chunkSize: PIECE_BYTES + 64 * 1024 };
      if (window && window.length > 0) options.dictionary = window;
      const job = deflatePiece(piece, options);
      job.catch(() => undefined); // awaited in order below; this only avoids an unhandled rejection on early exit
      jobs.push(job);
      window = piece.length >= WINDOW_BYTES ? piece.subarray(piece.length - WINDOW_BYTES) : Buffer.concat([window ?? Buffer.alloc(0), piece]).subarray(-WINDOW_BYTES);
    };
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    for await (const input of source) {
      pending.push(input);
      pendingBytes += input.length;
      while (pendingBytes >= PIECE_BYTES) {
        // Exactly PIECE_BYTES, copied once; the remainder stays a view of the last input.
        const piece = Buffer.allocUnsafe(PIECE_BYTES);
        let filled = 0;
        while (filled < PIECE_BYTES) {
          const head = pending[0]!;
          const n = Math.min(head.length, PIECE_BYTES - filled);
          head.copy(piece, filled, 0, n);
          filled += n;
          if (n === head.length) pending.shift();
          else pending[0] = head.subarray(n);
        }
        pendingBytes -= PIECE_BYTES;
        start(piece, false);
        while (jobs.length >= concurrency) yield await jobs.shift()!;
      }
    }
    start(pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes), true);
    while (jobs.length > 0) yield await jobs.shift()!;
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
