/**
 * Blobs ready to upload, and the step that makes them: gzip an uncompressed layer while hashing
 * both sides, into a temp file (never into memory), so the registry digest is known before the
 * upload starts and any byte range can be re-read for a retry. The gzip framing and the meter are
 * the SDK's one deflate-and-hash toolkit (`bundle/gzip.ts`).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { throwIfAborted, toAbortError } from '../core/abort.js';
import { abortAware } from '../core/scope.js';
import { deflateJobs, gzipMembers, OutputMeter, type GzipMemberSettings } from '../bundle/gzip.js';
import { gzipFileRange, type FileRange } from './layer-gzip.js';

/** Random-access bytes of a blob. */
export interface BlobData {
  /** Total bytes. */
  readonly size: number;
  /**
   * A fresh stream of bytes `[start, end)`. With `buffers`, a file is read into buffers lent from
   * there instead of fresh ones (the caller gives them back once the stream's consumer is done).
   */
  open(start: number, end: number, buffers?: ReadBuffers): Readable;
  /** Where the bytes are, when they are a range of a file (read directly by the layer gzip). */
  readonly file?: FileRange;
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
  /**
   * Set while the blob is still being written (a layer gzipped while it uploads): `digest` and
   * `size` are only final once {@link BlobGrowth.done}; until then `data` may only be read below
   * {@link BlobGrowth.written}.
   */
  growth?: BlobGrowth;
}

/**
 * How far a blob being written has got, for a reader that follows the writer (the upload of a
 * layer that is still being gzipped): bytes on disk so far, and whether the writer finished or
 * failed.
 */
export class BlobGrowth {
  /** Bytes written to the file (readable by then). */
  written = 0;
  /** True once the writer finished: the blob's digest and size are final. */
  done = false;
  private failure: { error: unknown } | undefined;
  private waiters: Array<{ end: number; resolve: () => void; reject: (e: unknown) => void }> = [];

  /** True when the writer failed. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** `bytes` more are on disk. */
  grew(bytes: number): void {
    this.written += bytes;
    this.wake();
  }

  /** The writer finished (set the blob's digest and size first). */
  finish(): void {
    this.done = true;
    this.wake();
  }

  /** The writer failed: every reader waiting gets its error. */
  fail(error: unknown): void {
    this.failure = { error };
    this.wake();
  }

  /** Resolves once `end` bytes are written or the blob is complete; rejects when the writer failed. */
  until(end: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.done || this.written >= end) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ end, resolve, reject }));
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (this.failure) w.reject(this.failure.error);
      else if (this.done || this.written >= w.end) w.resolve();
      else this.waiters.push(w);
    }
  }
}

/** A file sink that reports each write to `growth` once it is on disk (readable by another stream). */
function growingFile(path: string, growth: BlobGrowth): Writable {
  let handle: FileHandle | undefined;
  return new Writable({
    async construct(callback) {
      try {
        handle = await open(path, 'w');
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    writev(chunks, callback) {
      const buffers = chunks.map((c) => c.chunk as Buffer);
      const bytes = buffers.reduce((n, b) => n + b.length, 0);
      handle!.writev(buffers).then((r) => {
        if (r.bytesWritten !== bytes) return callback(new Error(`short write to ${path}`));
        growth.grew(bytes);
        callback();
      }, callback);
    },
    destroy(err, callback) {
      if (!handle) return callback(err);
      handle.close().then(
        () => callback(err),
        () => callback(err),
      );
    },
  });
}

/**
 * Read size of file streams: each read allocates a fresh buffer, whose page faults and GC cost
 * more than the read; 1 MiB halves the CPU of reading a layer against 256 KiB (4 MiB is slower again).
 */
const READ_CHUNK = 1024 * 1024;

/**
 * Read buffers reused from one request body to the next (a chunked upload's `PATCH`es): a body
 * reads into buffers lent from here, and once its request has completed (the registry answered,
 * so the socket has written every byte) they are given back. Fresh 1 MiB buffers per read cost
 * page faults and garbage collection worth more CPU than the reads. Buffers of a request that
 * failed are never reused: a cut socket may still hold them.
 */
export class ReadBuffers {
  private readonly free: Buffer[] = [];
  private lent: Buffer[] = [];
  constructor(readonly bytes = READ_CHUNK) {}
  /** A buffer for the current body. */
  lend(): Buffer {
    const b = this.free.pop() ?? Buffer.allocUnsafeSlow(this.bytes);
    this.lent.push(b);
    return b;
  }
  /** The current body's request is over: its buffers are reused when `reusable`, else dropped. */
  settle(reusable: boolean): void {
    if (reusable) this.free.push(...this.lent);
    this.lent = [];
  }
}

/** Bytes `[from, to)` of the file at `path`, read into buffers lent by `buffers`. */
function lentFileStream(path: string, from: number, to: number, buffers: ReadBuffers): Readable {
  let handle: FileHandle | undefined;
  let position = from;
  return new Readable({
    construct(callback) {
      open(path, 'r').then((h) => {
        handle = h;
        callback();
      }, callback);
    },
    read() {
      if (position >= to) {
        this.push(null);
        return;
      }
      const buf = buffers.lend();
      handle!.read(buf, 0, Math.min(buf.length, to - position), position).then(({ bytesRead }) => {
        if (bytesRead === 0) return this.destroy(new Error(`${path} ended at byte ${position}, before ${to}`));
        position += bytesRead;
        this.push(buf.subarray(0, bytesRead));
      }, (err: Error) => this.destroy(err));
    },
    destroy(err, callback) {
      if (!handle) return callback(err);
      handle.close().then(
        () => callback(err),
        () => callback(err),
      );
    },
  });
}

/** Bytes `[base, base + size)` of a file. */
export function fileData(path: string, base = 0, size: number): BlobData {
  return {
    size,
    file: { path, start: base, size },
    open: (start, end, buffers) => {
      if (end <= start) return Readable.from([]);
      if (buffers) return lentFileStream(path, base + start, base + end, buffers);
      return createReadStream(path, { start: base + start, end: base + end - 1, highWaterMark: READ_CHUNK });
    },
  };
}

/** A gzipped layer being written to `path`: size and digest are filled in when the gzip is done. */
export function growingBlob(path: string, diffId: string): PreparedBlob {
  const file = fileData(path, 0, 0);
  const blob: PreparedBlob = {
    digest: '',
    size: 0,
    data: {
      get size() {
        return blob.size;
      },
      open: (start, end, buffers) => file.open(start, end, buffers),
    },
    diffId,
    compressed: true,
    growth: new BlobGrowth(),
  };
  return blob;
}

/** Bytes held in memory (configs, manifests, tiny layers). */
export function bufferData(buf: Buffer): BlobData {
  return { size: buf.length, open: (start, end) => Readable.from([buf.subarray(start, end)]) };
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

/**
 * How layers are gzipped: the member framing of the toolkit's `gzipMembers` (see there; it decides
 * the layers' digests), or with `blockBytes: 0` one member on one thread.
 */
export type GzipSettings = GzipMemberSettings;

/**
 * Defaults of {@link GzipSettings}: level 4, 2 MiB blocks, `deflateJobs()` blocks in flight (4
 * with libuv's default pool).
 *
 * Level 4, not zlib's default 6: a cold push is CPU-bound, and level 4 deflates layers to what
 * `skopeo copy` (klauspost/pgzip at its default level) sends, for about 40% less deflate CPU than
 * level 6. Measured on two layers, 2 MiB blocks (size; deflate CPU):
 * - 52 MB of /usr/lib/python3 (the image bench's text layer): level 6 14.93 MB, 1.08 s; level 4
 *   15.49 MB, 0.66 s; level 3 16.05 MB, 0.62 s; skopeo 15.50 MB;
 * - 146 MB Debian bookworm + python3 rootfs (the tests' runtime image): level 6 47.47 MB, 3.23 s;
 *   level 4 48.82 MB, 1.98 s; level 3 50.41 MB, 1.83 s; skopeo 49.07 MB.
 * Level 3 saves little more CPU for 3% larger layers. The level is part of the layer cache's
 * recipe, so layers gzipped at another level are simply not found there.
 *
 * Four blocks in flight, one per thread of libuv's default pool, where the deflates run: against
 * three, a cold push of the runtime image took 1.21-1.27 s instead of 1.29-1.31 s (medians of 7-9
 * alternating runs, four rounds, 2 cores; six blocks: 1.27 s), and the mostly random bench image
 * the same. How many blocks are in flight never changes the bytes, so not the digests either.
 * `deflateJobs()` (`bundle/gzip.ts`) gives these four, or more where `UV_THREADPOOL_SIZE` gave
 * libuv's pool more threads on a machine with more cores; it is read each time the settings are
 * copied (`{ ...DEFAULT_GZIP }`), not when this module loads.
 */
export const DEFAULT_GZIP: GzipSettings = {
  level: 4,
  blockBytes: 2 * 1024 * 1024,
  get parallelBlocks() {
    return deflateJobs();
  },
};

/**
 * Gzip `source` into `path`, hashing input and output on the way; with `growth`, each write is
 * reported there once on disk, so an upload can follow the gzip. Deterministic for a given input
 * and settings (no name or mtime in the gzip headers, fixed block boundaries), so the same layer
 * gets the same digest on every push and the registry's copy is found by HEAD.
 *
 * @throws AstroAbortError when `signal` fires (never Node's own AbortError).
 */
export async function gzipToFile(
  source: AsyncIterable<Buffer> | Readable,
  path: string,
  settings: GzipSettings,
  signal?: AbortSignal,
  growth?: BlobGrowth,
): Promise<GzipResult> {
  refuseIfAborted(source, signal);
  const raw = new OutputMeter();
  const gz = new OutputMeter();
  const input = source instanceof Readable ? source : Readable.from(source);
  const deflate = settings.blockBytes > 0 ? gzipMembers(settings) : createGzip({ level: settings.level, memLevel: 9 });
  try {
    await pipeline(input, raw, deflate, gz, growth ? growingFile(path, growth) : createWriteStream(path), signal ? { signal } : {});
  } catch (err) {
    throw abortAware(err, signal);
  }
  return { path, digest: gz.ociDigest(), size: gz.bytes, diffId: raw.ociDigest(), rawSize: raw.bytes };
}

/**
 * Gzip the bytes of `data` into `path` as {@link gzipToFile} does (the same bytes and digests):
 * a range of a file in the block framing is read straight into recycled block buffers
 * (`layer-gzip.ts`), anything else goes through the stream pipeline.
 *
 * @throws AstroAbortError when `signal` fires
 */
export function gzipDataToFile(data: BlobData, path: string, settings: GzipSettings, signal?: AbortSignal, growth?: BlobGrowth): Promise<GzipResult> {
  if (data.file && data.file.size === data.size && settings.blockBytes > 0) return gzipFileRange(data.file, path, settings, signal, growth);
  return gzipToFile(data.open(0, data.size), path, settings, signal, growth);
}

/** Throw AstroAbortError before reading `source` when `signal` has fired, closing a stream source (its file). */
function refuseIfAborted(source: AsyncIterable<Buffer> | Readable, signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  if (source instanceof Readable) source.destroy();
  throw toAbortError(signal);
}

/** Digest and size of a stream. */
export async function hashStream(source: AsyncIterable<Buffer> | Readable, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
  const meter = new OutputMeter();
  refuseIfAborted(source, signal);
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      throwIfAborted(signal);
      meter.update(chunk);
    }
  } catch (err) {
    throw abortAware(err, signal);
  }
  return { digest: meter.ociDigest(), size: meter.bytes };
}

/** Digest of bytes in memory. */
export function digestOf(buf: Buffer): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
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
