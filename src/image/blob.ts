/**
 * Blobs ready to upload, and the step that makes them: gzip an uncompressed layer while hashing
 * both sides, into a temp file (never into memory), so the registry digest is known before the
 * upload starts and any byte range can be re-read for a retry.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, deflateRaw, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { asAbortError, throwIfAborted, toAbortError } from '../core/abort.js';

/** Random-access bytes of a blob. */
export interface BlobData {
  /** Total bytes. */
  readonly size: number;
  /** A fresh stream of bytes `[start, end)`. */
  open(start: number, end: number): Readable;
}

/** A blob with a known digest, ready to upload. */
export interface PreparedBlob {
  /** Registry digest (`sha256:...`) of {@link data}. */
  digest: string;
  size: number;
  data: BlobData;
  /** Uncompressed digest, for layers. */
  diffId?: string;
  /** True when this module gzipped it (false: pushed as found). */
  compressed: boolean;
}

/** Bytes `[base, base + size)` of a file. */
export function fileData(path: string, base = 0, size: number): BlobData {
  return {
    size,
    open: (start, end) =>
      end <= start ? Readable.from([]) : createReadStream(path, { start: base + start, end: base + end - 1, highWaterMark: 256 * 1024 }),
  };
}

/** Bytes held in memory (configs, manifests, tiny layers). */
export function bufferData(buf: Buffer): BlobData {
  return { size: buf.length, open: (start, end) => Readable.from([buf.subarray(start, end)]) };
}

const sha256hex = () => createHash('sha256');

/** A pass-through that hashes and counts what flows through it. */
export class HashCounter extends Transform {
  readonly hash = sha256hex();
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** Result of {@link gzipToFile}. */
export interface GzipResult {
  path: string;
  /** Digest and size of the gzipped file. */
  digest: string;
  size: number;
  /** Digest and size of the uncompressed input. */
  diffId: string;
  rawSize: number;
}

/** How layers are gzipped. */
export interface GzipSettings {
  /** zlib level, 1 (fastest) to 9 (smallest). */
  level: number;
  /**
   * Input block size, in bytes: each block becomes one gzip member, compressed on its own thread,
   * so one layer uses every core. 0 writes a single member on one thread.
   */
  blockBytes: number;
  /** Blocks compressed at once per layer. */
  parallelBlocks: number;
}

/** Defaults of {@link GzipSettings}: zlib's default level, 2 MiB blocks, 3 blocks in flight. */
export const DEFAULT_GZIP: GzipSettings = { level: 6, blockBytes: 2 * 1024 * 1024, parallelBlocks: 3 };

const gzipAsync = promisify(gzip);

/**
 * Gzip `source` into `path`, hashing input and output on the way. Deterministic for a given input
 * and settings (no name or mtime in the gzip headers, fixed block boundaries), so the same layer
 * gets the same digest on every push and the registry's copy is found by HEAD.
 *
 * With `blockBytes > 0` the output is a multi-member gzip file (RFC 1952 allows members to be
 * concatenated; Go's gzip reader, which Docker and containerd use, reads them all by default).
 */
export async function gzipToFile(
  source: AsyncIterable<Buffer> | Readable,
  path: string,
  settings: GzipSettings,
  signal?: AbortSignal,
): Promise<GzipResult> {
  refuseIfAborted(source, signal);
  const raw = new HashCounter();
  const gz = new HashCounter();
  const input = source instanceof Readable ? source : Readable.from(source);
  if (settings.blockBytes <= 0) {
    try {
      await pipeline(input, raw, createGzip({ level: settings.level, memLevel: 9 }), gz, createWriteStream(path), signal ? { signal } : {});
    } catch (err) {
      // pipeline() rejects with Node's own AbortError; the SDK's contract is AstroAbortError.
      throw asAbortError(err, signal);
    }
    return { path, digest: gz.digest(), size: gz.bytes, diffId: raw.digest(), rawSize: raw.bytes };
  }
  const out = createWriteStream(path);
  const outDone = new Promise<void>((resolve, reject) => {
    out.once('finish', resolve);
    out.once('error', reject);
  });
  const write = async (member: Buffer) => {
    gz.hash.update(member);
    gz.bytes += member.length;
    if (!out.write(member)) await once(out, 'drain');
  };
  // Members are written in input order; up to parallelBlocks are compressed at once.
  const inFlight: Array<Promise<Buffer>> = [];
  // A large chunkSize lets zlib compress a whole block in one go on its thread; with the default
  // (16 KiB) every slice takes a round trip through the main thread and blocks barely overlap.
  const options = { level: settings.level, memLevel: 9, chunkSize: Math.max(64 * 1024, settings.blockBytes + 64 * 1024) };
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let blocks = 0;
  const launch = (block: Buffer) => {
    blocks += 1;
    const p = (async () => {
      // Already-compressed content (wheels, zips, images) gains nothing from deflate but costs
      // most of its time; store such blocks. The choice depends on the bytes only, so the output
      // (and the digest) stays the same from push to push.
      const incompressible = settings.level > 0 && (await looksIncompressible(block));
      return gzipAsync(block, incompressible ? { ...options, level: 0 } : options);
    })();
    p.catch(() => undefined);
    inFlight.push(p);
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      throwIfAborted(signal);
      raw.hash.update(chunk);
      raw.bytes += chunk.length;
      pending.push(chunk);
      pendingBytes += chunk.length;
      while (pendingBytes >= settings.blockBytes) {
        const all = Buffer.concat(pending);
        launch(all.subarray(0, settings.blockBytes));
        const rest = all.subarray(settings.blockBytes);
        pending = rest.length ? [rest] : [];
        pendingBytes = rest.length;
        while (inFlight.length >= settings.parallelBlocks) await write(await inFlight.shift()!);
      }
    }
    if (pendingBytes > 0 || blocks === 0) launch(Buffer.concat(pending));
    while (inFlight.length) await write(await inFlight.shift()!);
    out.end();
    await outDone;
  } catch (err) {
    out.destroy();
    throw asAbortError(err, signal);
  }
  return { path, digest: gz.digest(), size: gz.bytes, diffId: raw.digest(), rawSize: raw.bytes };
}

/** Throw AstroAbortError before reading `source` when `signal` has fired, closing a stream source (its file). */
function refuseIfAborted(source: AsyncIterable<Buffer> | Readable, signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  if (source instanceof Readable) source.destroy();
  throw toAbortError(signal);
}

const deflateRawAsync = promisify(deflateRaw);
const SAMPLE_BYTES = 16 * 1024;

/**
 * True when three samples of `block` (start, middle, end) shrink by less than 2% at the fastest
 * level: the block is then stored rather than deflated.
 */
async function looksIncompressible(block: Buffer): Promise<boolean> {
  if (block.length < 4 * SAMPLE_BYTES) return false;
  const starts = [0, Math.floor(block.length / 2), block.length - SAMPLE_BYTES];
  for (const start of starts) {
    const sample = block.subarray(start, start + SAMPLE_BYTES);
    const out = await deflateRawAsync(sample, { level: 1 });
    if (out.length < sample.length * 0.98) return false;
  }
  return true;
}

/** Digest and size of a stream. */
export async function hashStream(source: AsyncIterable<Buffer> | Readable, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
  const h = sha256hex();
  let size = 0;
  refuseIfAborted(source, signal);
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      throwIfAborted(signal);
      h.update(chunk);
      size += chunk.length;
    }
  } catch (err) {
    throw asAbortError(err, signal);
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/** Digest of bytes in memory. */
export function digestOf(buf: Buffer): string {
  return `sha256:${sha256hex().update(buf).digest('hex')}`;
}

/** A per-operation temp folder (under the OS temp dir, never in a project) that is removed afterwards. */
export class TempSpace {
  private counter = 0;
  constructor(readonly dir: string) {}
  file(hint: string): string {
    this.counter += 1;
    return join(this.dir, `${this.counter}-${hint.replace(/[^A-Za-z0-9._-]/g, '_').slice(-40)}`);
  }
  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
