/**
 * The SDK's one deflate-and-hash toolkit, built on `node:zlib`: deterministic, parallel gzip in
 * two framings, and a SHA-256 meter for what passes.
 *
 * One zlib deflate stream runs on one thread, so `createGzip()` caps packing at the speed of a
 * single core. Both framings therefore cut the input into fixed pieces ({@link inPieces}) that are
 * deflated concurrently on the libuv thread pool and written in order. Piece boundaries depend only
 * on byte offsets, and each piece's zlib settings (output buffer included) only on the piece, never
 * on timing, so concurrency does not affect the output.
 *
 * - {@link parallelGzip} (bundles): 1 MiB pieces, each primed with the 32 KiB that precede it (as
 *   pigz does, so the ratio stays that of a single stream) and ended with a sync flush; the last
 *   one ends the deflate stream. A piece that looks incompressible (`stored-pieces.ts`: decided
 *   from its bytes alone) is written as stored blocks instead of being deflated. The pieces
 *   concatenate into ONE ordinary gzip member, which every gunzip reads, with the CRC-32 and size
 *   computed over the whole input. The header is written here: no file name, MTIME 0, and OS 255
 *   ("unknown", as Go's `compress/gzip` writes) instead of zlib's compile-time OS code, so the
 *   same tar bytes give the same `.tar.gz` bytes on every platform with the same zlib.
 * - {@link gzipMembers} (image layers): each block becomes a gzip member of its own (RFC 1952
 *   allows members to be concatenated; Go's gzip reader, which Docker and containerd use, reads
 *   them all). Layer digests depend on this framing (registries and the layer cache find layers by
 *   them), so it must not change: not the block boundaries, not zlib's member headers, not the
 *   choice to store blocks that do not compress.
 */
import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { constants, crc32, createGzip, deflateRaw, deflateRawSync, gzipSync, type ZlibOptions } from 'node:zlib';
import { looksIncompressible as pieceLooksIncompressible, storedBlocks } from './stored-pieces.js';

/** Uncompressed bytes per independently deflated piece. */
export const PIECE_BYTES = 1024 * 1024;
/**
 * zlib's output buffer for every deflated piece: more than a piece can ever deflate to (zlib's
 * `deflateBound` for 1 MiB at the default window and memory level is 1 MiB + 327 bytes, stored
 * blocks at level 0 add 5 bytes per 64 KiB, a sync flush at most 6), so zlib never fills it.
 * The same for every piece: a piece's bytes depend on it (see {@link parallelGzip}).
 */
const OUT_BYTES = PIECE_BYTES + 64 * 1024;
/**
 * Pieces {@link parallelGzip} deflates at once by default. Pieces finish in order, and with two
 * in flight the main thread often sat waiting for the older one while a core idled (a third of
 * its time on 20,000 small files); with four, the reads and two deflates keep both cores busy.
 * Packing 20,000 small files took 1.26-1.39 s against 1.49-1.64 s with two (3 alternating runs,
 * 2 cores), for ~1-4 MB more peak RSS (two more 1 MiB pieces and their output).
 */
export const PIECES_IN_FLIGHT = 4;

/** libuv's own bounds on its thread pool (`deps/uv/src/threadpool.c`). */
const DEFAULT_POOL_THREADS = 4;
const MAX_POOL_THREADS = 1024;

/**
 * Threads of libuv's pool, where the deflates run, as libuv sizes it when the pool starts:
 * `UV_THREADPOOL_SIZE` read like C's `atoi` (0 or no digits → 1, above 1024 → 1024), else 4.
 * Read from `env` on each call: the pool reads it once, at its first use.
 */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.UV_THREADPOOL_SIZE;
  if (raw === undefined) return DEFAULT_POOL_THREADS;
  const n = Number.parseInt(raw.trim(), 10);
  // libuv keeps the count unsigned, so a negative value wraps around to the maximum.
  if (Number.isNaN(n) || n === 0) return 1;
  return n < 0 ? MAX_POOL_THREADS : Math.min(n, MAX_POOL_THREADS);
}

/**
 * Most deflate jobs {@link deflateJobs} keeps in flight per stream: each holds its input (1 MiB
 * pieces, 2 MiB blocks) and its output, and an image push gzips up to three layers at once.
 */
export const MAX_DEFLATE_JOBS = 16;

/**
 * Deflate jobs to keep in flight: {@link PIECES_IN_FLIGHT}, or, where `UV_THREADPOOL_SIZE` gave
 * the pool more threads, one per thread up to the number of cores and {@link MAX_DEFLATE_JOBS}.
 * libuv's pool has 4 threads whatever the machine, so on more than 4 cores only a larger pool (and
 * as many jobs) lets the deflates use them; more jobs than cores would only queue and hold more
 * memory. How many jobs are in flight never changes the bytes.
 * @param pool threads of libuv's pool. @default {@link threadPoolSize}()
 * @param cores cores this process may use. @default `os.availableParallelism()`
 */
export function deflateJobs(pool = threadPoolSize(), cores = availableParallelism()): number {
  return Math.max(PIECES_IN_FLIGHT, Math.min(pool, cores, MAX_DEFLATE_JOBS));
}

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
 * Cut `source` into pieces of `pieceBytes` (the last one shorter, possibly empty) and run `start`
 * on each, in order, with at most `concurrency` jobs in flight; yield the jobs' outputs in order.
 * `start` is called synchronously in input order, so it may keep running state (a CRC, a window).
 * Every input is copied into the current piece before the next one is requested, so the source may
 * reuse the buffer it yielded (the tar writer does); pieces are recycled once their job finished,
 * so at most `concurrency + 1` of them ever exist.
 */
export async function* inPieces(
  source: AsyncIterable<Buffer>,
  pieceBytes: number,
  concurrency: number,
  start: (input: Buffer, last: boolean) => Promise<Buffer>,
): AsyncGenerator<Buffer> {
  const free: Buffer[] = [];
  const jobs: Array<{ piece: Buffer; out: Promise<Buffer> }> = [];
  const launch = (piece: Buffer, length: number, last: boolean) => {
    const out = start(piece.subarray(0, length), last);
    out.catch(() => undefined); // awaited in order below; this only avoids an unhandled rejection on early exit
    jobs.push({ piece, out });
  };
  const finish = async (): Promise<Buffer> => {
    const job = jobs.shift()!;
    const out = await job.out;
    free.push(job.piece);
    return out;
  };
  let piece: Buffer = Buffer.allocUnsafe(pieceBytes);
  let filled = 0;
  for await (const input of source) {
    let offset = 0;
    while (offset < input.length) {
      const n = Math.min(input.length - offset, pieceBytes - filled);
      input.copy(piece, filled, offset, offset + n);
      filled += n;
      offset += n;
      if (filled === pieceBytes) {
        launch(piece, pieceBytes, false);
        while (jobs.length >= Math.max(1, concurrency)) yield await finish();
        piece = free.pop() ?? Buffer.allocUnsafe(pieceBytes);
        filled = 0;
      }
    }
  }
  launch(piece, filled, true);
  while (jobs.length > 0) yield await finish();
}

/**
 * A `stream.pipeline` stage that gzips its input into one member with `concurrency` pieces in flight.
 * @param level zlib level, 0-9.
 * @param concurrency pieces deflated at once (thread-pool jobs). @default {@link deflateJobs}() (4 unless `UV_THREADPOOL_SIZE` raised libuv's pool)
 */
export function parallelGzip(level: number, concurrency = deflateJobs()): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* gzipStage(source) {
    yield gzipHeader(level);
    let crc = 0;
    let total = 0;
    // The last WINDOW_BYTES of input, copied (zlib copies a dictionary when the stream is created,
    // so this buffer can be refilled as soon as the next piece has started).
    const window = Buffer.allocUnsafe(WINDOW_BYTES);
    let windowBytes = 0;
    const start = (input: Buffer, last: boolean): Promise<Buffer> => {
      const length = input.length;
      crc = crc32(input, crc);
      total += length;
      let out: Promise<Buffer>;
      if (level > 0 && pieceLooksIncompressible(input)) {
        // Deflate would spend a core to emit (nearly) stored blocks: write them directly.
        out = Promise.resolve(storedBlocks(input, last));
      } else {
        // A piece that is not the last is deflated with its sync flush in the same call (`flush`):
        // all its output comes from one thread-pool job into one buffer. With finishFlush alone
        // the flush is a second job that allocates a second output buffer (~8 MB more peak RSS
        // for 20,000 small files). Same bytes either way.
        //
        // The bytes DO depend on the output buffer's size: when zlib fills the buffer while it
        // writes a sync flush's empty stored block, it writes a second one into the next buffer
        // (5 more bytes; at level 0 the stored blocks themselves follow the buffer). Sized from
        // the last piece's output, as it once was, the buffer depended on which piece had
        // finished, so the same tree could give other bytes from run to run. It is therefore
        // one size for every piece, larger than any piece's output, which zlib never fills: the
        // bytes are those of one deflate call with unlimited output. Its pages are touched only
        // as far as zlib writes, and peak RSS measured the same as with buffers sized to the
        // output (20,000 and 80,000 small files, the mixed tree).
        const options: ZlibOptions = last
          ? { level, finishFlush: constants.Z_FINISH, chunkSize: OUT_BYTES }
          : { level, flush: constants.Z_SYNC_FLUSH, finishFlush: constants.Z_SYNC_FLUSH, chunkSize: OUT_BYTES };
        if (windowBytes > 0) options.dictionary = window.subarray(0, windowBytes);
        out = deflatePiece(input, options);
      }
      if (length >= WINDOW_BYTES) {
        input.copy(window, 0, length - WINDOW_BYTES);
        windowBytes = WINDOW_BYTES;
      } else {
        const keep = Math.min(windowBytes, WINDOW_BYTES - length);
        window.copy(window, 0, windowBytes - keep, windowBytes);
        input.copy(window, keep);
        windowBytes = keep + length;
      }
      return out;
    };
    yield* inPieces(source, PIECE_BYTES, concurrency, start);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(total % 0x100000000, 4);
    yield trailer;
  };
}

/** How {@link gzipMembers} gzips. */
export interface GzipMemberSettings {
  /** zlib level, 1 (fastest) to 9 (smallest). */
  level: number;
  /** Input block size, in bytes: each block becomes one gzip member, compressed on its own thread. */
  blockBytes: number;
  /** Blocks compressed at once. */
  parallelBlocks: number;
}

/**
 * `block` gzipped as one member, as zlib's output chunks: what `zlib.gzip(block, options)` writes,
 * without joining the chunks into one buffer. They are slices of the engine's output buffer, and
 * the join was a copy into fresh memory: ~110 ms of main-thread CPU, mostly page faults, for the
 * 49 MB a 146 MB image layer deflates to.
 */
function gzipMember(block: Buffer, options: ZlibOptions): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const engine = createGzip(options);
    const chunks: Buffer[] = [];
    engine.on('data', (chunk: Buffer) => chunks.push(chunk));
    engine.once('error', reject);
    engine.once('end', () => resolve(chunks));
    engine.end(block);
  });
}

/**
 * A `stream.pipeline` stage that gzips its input as one member per `blockBytes` block (the layer
 * framing, see the module comment), `parallelBlocks` at once. Empty input gives one empty member;
 * input that ends on a block boundary gets no empty member after the last block.
 */
export function gzipMembers(settings: GzipMemberSettings): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* membersStage(source) {
    let blocks = 0;
    yield* inPieces(source, settings.blockBytes, settings.parallelBlocks, async (block, last) => {
      if (last && block.length === 0 && blocks > 0) return Buffer.alloc(0);
      blocks += 1;
      // The piece is recycled once this job is done: stored parts that point into it are copied.
      const parts = await layerMember(block, settings);
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    });
  };
}

/**
 * The member of {@link gzipMembers} for one block, as the buffers to write in order. A block that
 * does not compress comes back as stored-block headers around slices of `block` itself (no copy:
 * `block` must stay unchanged until the parts are written); any other as zlib's output. For
 * readers that own their block buffers (the image push reads an archive's layer straight into them).
 */
export async function layerMember(block: Buffer, settings: GzipMemberSettings): Promise<Buffer[]> {
  // Already-compressed content (wheels, zips, images) gains nothing from deflate but costs
  // most of its time; store such blocks. The choice depends on the bytes only, so the output
  // (and the digest) stays the same from push to push.
  const share = settings.level > 0 ? sampledShare(block) : undefined;
  const incompressible = share === 1;
  if (incompressible && storedMatchesZlib()) return storedMember(block);
  // zlib's output buffer is allocated whole before it starts, and is large enough for the whole
  // member, so that zlib compresses the block in one go on its thread (with the default 16 KiB
  // every slice takes a round trip through the main thread and blocks barely overlap). Sized for
  // the worst case it was ~3x what a compressible block needs, and that external memory made V8
  // collect more often; so it is sized from the samples, with a margin. A short guess costs a
  // second chunk, never other bytes.
  const worst = block.length + 64 * 1024;
  const chunkSize = share === undefined || incompressible ? worst : Math.min(worst, Math.ceil(block.length * share * 1.5) + 64 * 1024);
  return gzipMember(block, { level: incompressible ? 0 : settings.level, memLevel: 9, chunkSize });
}

/** Largest stored deflate block (RFC 1951: LEN is 16 bits). */
const MAX_STORED = 65535;
/** zlib's gzip header for level 0 (XFL 4, zlib's compile-time OS code), read from zlib once. */
let storedHeader: Buffer | undefined;
let storedChecked: boolean | undefined;

/**
 * A gzip member holding `block` in stored deflate blocks, byte for byte what zlib writes at level
 * 0 given the whole block and a large enough output buffer (65535-byte blocks, the last one final),
 * but built here as parts (header, each block's 5 bytes before its slice of `block`, the CRC and
 * size): zlib's level 0 runs at a fraction of memory speed (about 2x slower, on a thread), and
 * random-looking layers are mostly such blocks.
 */
function storedMember(block: Buffer): Buffer[] {
  const count = Math.max(1, Math.ceil(block.length / MAX_STORED));
  const heads = Buffer.allocUnsafe(count * 5 + 8);
  const parts: Buffer[] = [storedHeader!];
  for (let i = 0, from = 0; i < count; i++) {
    const len = Math.min(MAX_STORED, block.length - from);
    const head = heads.subarray(i * 5, i * 5 + 5);
    head[0] = i === count - 1 ? 1 : 0;
    head.writeUInt16LE(len, 1);
    head.writeUInt16LE(len ^ 0xffff, 3);
    parts.push(head, block.subarray(from, from + len));
    from += len;
  }
  const trailer = heads.subarray(count * 5);
  trailer.writeUInt32LE(crc32(block) >>> 0, 0);
  trailer.writeUInt32LE(block.length % 0x100000000, 4);
  parts.push(trailer);
  return parts;
}

/**
 * True when {@link storedMember} gives zlib's exact bytes on this runtime (checked once, on
 * sizes around the block limit): the layer digests must not depend on which path wrote a block.
 * Should a zlib ever frame stored blocks differently, zlib is used as before.
 */
function storedMatchesZlib(): boolean {
  if (storedChecked !== undefined) return storedChecked;
  storedHeader = gzipSync(Buffer.alloc(0), { level: 0 }).subarray(0, 10);
  const sample = Buffer.alloc(3 * MAX_STORED + 17);
  for (let i = 0; i < sample.length; i++) sample[i] = (i * 2654435761) >>> 24;
  storedChecked = [0, 1, MAX_STORED, MAX_STORED + 1, sample.length].every((n) => {
    const piece = sample.subarray(0, n);
    return Buffer.concat(storedMember(piece)).equals(gzipSync(piece, { level: 0, memLevel: 9, chunkSize: 4 * MAX_STORED }));
  });
  return storedChecked;
}

const SAMPLE_BYTES = 16 * 1024;

/**
 * How well `block` deflates, from three samples (start, middle, end) at the fastest level: the
 * share of its size the first sample that shrinks by 2% or more deflates to, or 1 when none does
 * (the block is then stored rather than deflated); undefined for a block shorter than four
 * samples (never stored). The samples are deflated here, not on the thread pool: ~0.2 ms each,
 * where an asynchronous call (a zlib stream made and torn down for 16 KiB) cost about twice that
 * in CPU, most of it on this thread, three times per block of an image's incompressible layers.
 * Same zlib, same options: the same decisions, so the same bytes.
 */
function sampledShare(block: Buffer): number | undefined {
  if (block.length < 4 * SAMPLE_BYTES) return undefined;
  const starts = [0, Math.floor(block.length / 2), block.length - SAMPLE_BYTES];
  for (const start of starts) {
    const sample = block.subarray(start, start + SAMPLE_BYTES);
    const deflated = deflateRawSync(sample, { level: 1 }).length;
    if (deflated < sample.length * 0.98) return deflated / sample.length;
  }
  return 1;
}

/**
 * Pass-through that computes the SHA-256 and size of what passes (a `.tar.gz`, a layer on either
 * side of its gzip). {@link update} feeds it directly, without a stream.
 */
export class OutputMeter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private hex: string | undefined;
  /** Bytes passed so far. */
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.update(chunk);
    done(null, chunk);
  }

  /** Count and hash `chunk` (what {@link _transform} does for a stream). */
  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
  }

  /** Hex SHA-256 of everything that passed (once the stream finished; later calls give the same). */
  digest(): string {
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }

  /** The same digest as OCI writes it: `sha256:<hex>`. */
  ociDigest(): string {
    return `sha256:${this.digest()}`;
  }
}
