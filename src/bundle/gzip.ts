/**
 * Deterministic gzip framing and output accounting.
 *
 * Node's zlib already writes a gzip header with MTIME 0 and no file name; the one byte that still
 * depends on the machine is OS (zlib puts its compile-time OS code there: 3 on Unix, other values
 * on Windows or macOS builds). {@link GzipFinisher} overwrites it with 255 ("unknown", as Go's
 * `compress/gzip` writes) so the same tar bytes give the same `.tar.gz` bytes everywhere a given
 * zlib produces the same deflate stream, and it hashes and counts the output on the way through.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { constants, createGzip, type Gzip } from 'node:zlib';

/** Offset of the OS byte in a gzip member header (RFC 1952). */
const OS_OFFSET = 9;
/** OS value written into the header: 255 = unknown. */
export const GZIP_OS_UNKNOWN = 255;

/** A gzip compressor at a fixed level. */
export function deterministicGzip(level: number): Gzip {
  return createGzip({ level, memLevel: 8, strategy: constants.Z_DEFAULT_STRATEGY, chunkSize: 64 * 1024 });
}

/** Pass-through that fixes the gzip OS byte and computes the SHA-256 and size of what passes. */
export class GzipFinisher extends Transform {
  private readonly hash: Hash = createHash('sha256');
  /** Bytes passed so far. */
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.bytes <= OS_OFFSET && this.bytes + chunk.length > OS_OFFSET) {
      chunk = Buffer.from(chunk);
      chunk[OS_OFFSET - this.bytes] = GZIP_OS_UNKNOWN;
    }
    this.bytes += chunk.length;
    this.hash.update(chunk);
    done(null, chunk);
  }

  /** Hex SHA-256 of everything that passed (call once, after the stream finished). */
  digest(): string {
    return this.hash.digest('hex');
  }
}
