/**
 * Block digests computed off the main thread.
 *
 * Every block's MD5 must be known before its request starts (it is both the `Content-MD5` header
 * and part of the block ID), and Node's hashes are synchronous: hashed inline, 64 MiB of MD5 holds
 * the event loop for about 0.1 s during which no socket is written. A small worker pool hashes the
 * next blocks while the current ones are on the wire.
 *
 * A file block is read by the worker itself, from the upload's open descriptor (descriptors are
 * shared by every thread of a process), into the block's shared 1 MiB pieces (buffer-pool.ts),
 * and hashed as it is read; the request body then sends those same pieces, so each byte of a file
 * is read once and never copied by the main thread. Memory backed by a
 * `SharedArrayBuffer` (the block buffers of buffer-pool.ts) is read by the worker in place. A
 * plain buffer (a caller's `Uint8Array`) is copied whole into one of two shared staging buffers
 * reused for the life of the process (a copy into memory already touched costs ~1/20 of the MD5;
 * fresh pages would cost more than the hash) and handed over in one message, so the worker never
 * waits for a turn of a busy main thread in the middle of a block. Small inputs are hashed inline. Idle
 * workers do not keep the process alive and end after a short idle time. If workers cannot be
 * started (a restricted runtime) or one fails, hashing falls back to the main thread.
 *
 * A worker takes ~40-80 ms of CPU to start, about what MD5 of 30-60 MiB costs, and most uploads
 * are small DAG bundles in a new process. Waiting for the worker made the first upload of a
 * process of 1-3 MiB take ~100-120 ms against `uploadData`'s ~55-75 ms, and starting one beside a
 * 16 MiB upload slowed its first blocks on two cores. So the calling thread hashes until it has
 * hashed {@link START_WORKER_AFTER_BYTES} (a block of 2 MiB: ~3 ms of MD5); only then is a worker
 * started, and work goes to workers once they are online. A payload of a few MiB never starts one.
 * One input of that size or more (a large single Put Blob of a file, a 32 MiB block after the
 * workers ended idle) would hold the event loop for longer than a worker takes to start: it waits
 * for one. A single Put Blob of a caller's byte array does not come here: {@link digestInSlices}
 * hashes it in place.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TimeSlice } from '../core/time-slice.js';
import { sizeClassOf } from './buffer-pool.js';

/** Inputs below this size are hashed inline, in bytes. */
const INLINE_BELOW_BYTES = 512 * 1024;
/** Idle workers end after this long, in milliseconds. */
const IDLE_END_MS = 5_000;
/**
 * Bytes the calling thread hashes before the pool starts a worker: about a worker's start-up in
 * MD5 time (~45 ms). Counted from the pool's start, and again after its workers ended idle.
 */
export const START_WORKER_AFTER_BYTES = 32 * 1024 * 1024;
/** Staging buffers per process: one being hashed while the next block is copied. */
const STAGING_COUNT = 2;

/** What a worker (or the fallback) answers when a file range it hashes ends before its length. */
export const SHORT_READ = 'the file ended before the range';

/**
 * The worker's whole program. `fill` tasks read a range of a file descriptor (shared by every
 * thread of the process) into shared pieces, hashing each piece as it is read. `whole` tasks hash
 * one shared range and answer with the digest. Modules come from `process.getBuiltinModule`, not
 * `require`: eval'd worker code runs as ESM when the host process was started with
 * `--input-type=module`, and there `require` does not exist.
 */
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const { createHash } = process.getBuiltinModule('node:crypto');
const { readSync } = process.getBuiltinModule('node:fs');
parentPort.on('message', (task) => {
  try {
    if (task.kind === 'fill') {
      const hash = createHash(task.algorithm);
      let position = task.position;
      for (const piece of task.pieces) {
        for (let filled = 0; filled < piece.length; ) {
          const n = readSync(task.fd, piece, filled, piece.length - filled, position + filled);
          if (n === 0) throw new Error('${SHORT_READ}');
          filled += n;
        }
        hash.update(piece);
        position += piece.length;
      }
      parentPort.postMessage({ id: task.id, digest: hash.digest() });
      return;
    }
    const bytes = new Uint8Array(task.buffer, task.byteOffset, task.length);
    parentPort.postMessage({ id: task.id, digest: createHash(task.algorithm).update(bytes).digest() });
  } catch (error) {
    parentPort.postMessage({ id: task.id, error: String((error && error.message) || error) });
  }
});
`;

/** Digest algorithms the pool computes (any `createHash` name works; these are the ones used). */
export type HashAlgorithm = 'md5' | 'sha256';

interface Task {
  resolve: (digest: Buffer) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Task>;
  dead: boolean;
  /** The worker has started and takes tasks (see {@link HashPool.pick}). */
  online: boolean;
}

function inlineDigest(bytes: Uint8Array, algorithm: HashAlgorithm): Buffer {
  return createHash(algorithm).update(bytes).digest();
}

/**
 * What a `fill` task does, on the calling thread: read `pieces` full from the open file `fd` at
 * `position` and answer their digest (rejects with {@link SHORT_READ} if the file ends first).
 */
export function fillFromFileHere(fd: number, position: number, pieces: Uint8Array[], algorithm: HashAlgorithm): Buffer {
  const hash = createHash(algorithm);
  for (const piece of pieces) {
    for (let filled = 0; filled < piece.length; ) {
      const n = readSync(fd, piece, filled, piece.length - filled, position + filled);
      if (n === 0) throw new Error(SHORT_READ);
      filled += n;
    }
    hash.update(piece);
    position += piece.length;
  }
  return hash.digest();
}

const sharedMemory = typeof SharedArrayBuffer === 'function';

/** A lazily started pool of hashing workers. One per process is enough: see {@link hashOffThread}. */
export class HashPool {
  private workers: PoolWorker[] = [];
  private nextId = 1;
  private turn = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private unavailable = false;
  private stagingMade = 0;
  private freeStaging: SharedArrayBuffer[] = [];
  private stagingWaiters: Array<(buffer: SharedArrayBuffer) => void> = [];
  private onlineWaiters: Array<() => void> = [];
  /** Bytes hashed on the calling thread since the pool (re)started. */
  private inlineBytes = 0;
  /** Digests and fills done so far, on a worker and on the calling thread (for tests and diagnostics). */
  readonly done = { worker: 0, inline: 0 };

  /** @param size Workers to run (default: one per spare core, at least 1, at most 2). */
  constructor(private readonly size = Math.max(1, Math.min(2, availableParallelism() - 1))) {}

  /** The `algorithm` digest of `bytes`; never rejects because of the pool (falls back inline). */
  async digest(bytes: Uint8Array, algorithm: HashAlgorithm): Promise<Buffer> {
    const slot = !sharedMemory || bytes.byteLength < INLINE_BELOW_BYTES || this.unavailable ? undefined : await this.slotFor(bytes.byteLength);
    if (!slot) return this.inline(bytes.byteLength, () => inlineDigest(bytes, algorithm));
    this.done.worker += 1;
    const id = this.nextId++;
    try {
      const answer = new Promise<Buffer>((resolve, reject) => slot.pending.set(id, { resolve, reject }));
      // Observed below, but a worker may die while the pieces are still being sent.
      answer.catch(() => {});
      this.busy(slot);
      if (bytes.buffer instanceof SharedArrayBuffer) {
        slot.worker.postMessage({ kind: 'whole', id, algorithm, buffer: bytes.buffer, byteOffset: bytes.byteOffset, length: bytes.byteLength });
        return await answer;
      }
      const staging = await this.takeStaging(bytes.byteLength);
      try {
        new Uint8Array(staging, 0, bytes.byteLength).set(bytes);
        slot.worker.postMessage({ kind: 'whole', id, algorithm, buffer: staging, byteOffset: 0, length: bytes.byteLength });
        return await answer;
      } finally {
        this.giveStaging(staging);
      }
    } catch {
      // The worker died or refused the task: the main thread still gives the right answer.
      slot.pending.delete(id);
      return this.inline(bytes.byteLength, () => inlineDigest(bytes, algorithm));
    }
  }

  /**
   * Fill `pieces` with the bytes of the open file `fd` from `position` on (in order, each piece
   * whole) and answer their `algorithm` digest; a worker does both. Rejects with an Error whose
   * message is {@link SHORT_READ} if the file ends first, or with the read's error. Pieces not
   * backed by a `SharedArrayBuffer`, or no worker, mean the calling thread does it.
   */
  async fillFromFile(fd: number, position: number, pieces: Uint8Array[], algorithm: HashAlgorithm): Promise<Buffer> {
    const shared = sharedMemory && pieces.every((p) => p.buffer instanceof SharedArrayBuffer);
    const length = pieces.reduce((n, p) => n + p.byteLength, 0);
    const slot = this.unavailable || !shared ? undefined : await this.slotFor(length);
    if (!slot) return this.inline(length, () => fillFromFileHere(fd, position, pieces, algorithm));
    this.done.worker += 1;
    const id = this.nextId++;
    const answer = new Promise<Buffer>((resolve, reject) => slot.pending.set(id, { resolve, reject }));
    this.busy(slot);
    slot.worker.postMessage({ kind: 'fill', id, algorithm, fd, position, pieces });
    try {
      return await answer;
    } catch (error) {
      // A read that failed is the file's problem; a worker that died is ours: read here instead.
      if (!slot.dead) throw error;
      return this.inline(length, () => fillFromFileHere(fd, position, pieces, algorithm));
    }
  }

  /**
   * Start a worker if none is running and resolve once one is online: true then, false when
   * none can start. The wait keeps the process alive. Work asked of the pool meanwhile is done on
   * the calling thread, except an input of {@link START_WORKER_AFTER_BYTES} or more, which waits too.
   */
  async whenOnline(): Promise<boolean> {
    // A worker that dies while starting is replaced once; a runtime where workers keep failing has none.
    for (let starts = 0; ; ) {
      if (this.workers.some((w) => w.online)) return true;
      if (this.workers.length === 0 && (starts++ >= 2 || !this.start())) return false;
      // Someone awaits the start: it keeps the process alive until then (maybeIdle lets go once online).
      for (const w of this.workers) w.worker.ref();
      await new Promise<void>((resolve) => this.onlineWaiters.push(resolve));
    }
  }

  /** Workers started and not ended (online or still starting). */
  get running(): number {
    return this.workers.length;
  }

  private inline<T>(bytes: number, work: () => T): T {
    this.done.inline += 1;
    this.inlineBytes += bytes;
    return work();
  }

  /** End every worker now (pending digests fall back to the main thread). */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    // Staging buffers go with the workers: an idle process keeps no block-sized memory.
    this.freeStaging = [];
    this.stagingMade = 0;
    this.inlineBytes = 0;
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate().catch(() => 0)));
  }

  /** A free staging buffer of at least `length` bytes (a smaller one is replaced, in power-of-two sizes). */
  private async takeStaging(length: number): Promise<SharedArrayBuffer> {
    let buffer = this.freeStaging.pop();
    if (!buffer && this.stagingMade < STAGING_COUNT) {
      this.stagingMade += 1;
      buffer = new SharedArrayBuffer(sizeClassOf(length));
    }
    buffer ??= await new Promise<SharedArrayBuffer>((resolve) => this.stagingWaiters.push(resolve));
    return buffer.byteLength >= length ? buffer : new SharedArrayBuffer(sizeClassOf(length));
  }

  private giveStaging(buffer: SharedArrayBuffer): void {
    const waiter = this.stagingWaiters.shift();
    if (waiter) waiter(buffer);
    else this.freeStaging.push(buffer);
  }

  /**
   * Where a task of `bytes` runs: {@link pick}'s choice, except that an input that alone would
   * hold the calling thread for longer than a worker takes to start waits for one.
   */
  private async slotFor(bytes: number): Promise<PoolWorker | undefined> {
    const slot = this.pick();
    if (slot || bytes < START_WORKER_AFTER_BYTES) return slot;
    return (await this.whenOnline()) ? this.pick() : undefined;
  }

  /**
   * The online worker to give a task to, least loaded first (ties broken round-robin), or
   * undefined when none is online yet: the caller then does the work itself. Starts a worker (up
   * to the pool's size) on every call that finds fewer running, once the calling thread has
   * hashed {@link START_WORKER_AFTER_BYTES} or one is running already.
   */
  private pick(): PoolWorker | undefined {
    if (this.workers.length < this.size && (this.workers.length > 0 || this.inlineBytes >= START_WORKER_AFTER_BYTES)) this.start();
    const online = this.workers.filter((w) => w.online);
    if (online.length === 0) return undefined;
    this.turn = (this.turn + 1) % online.length;
    let best = online[this.turn]!;
    for (const w of online) if (w.pending.size < best.pending.size) best = w;
    return best;
  }

  private start(): PoolWorker | undefined {
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true, name: 'astro-deploy-sdk hash' });
    } catch {
      this.unavailable = true;
      return undefined;
    }
    const slot: PoolWorker = { worker, pending: new Map(), dead: false, online: false };
    worker.once('online', () => {
      slot.online = true;
      this.wakeOnlineWaiters();
      // Started by a call that did its work inline: nothing pending, so it may go idle.
      this.maybeIdle();
    });
    worker.on('message', (m: { id?: number; digest?: Uint8Array; error?: string }) => {
      const task = slot.pending.get(m.id!);
      if (!task) return;
      slot.pending.delete(m.id!);
      if (m.digest) task.resolve(Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength));
      else task.reject(new Error(m.error ?? 'hash worker failed'));
      this.maybeIdle();
    });
    const fail = (error: Error) => {
      if (slot.dead) return;
      slot.dead = true;
      slot.online = false;
      this.workers = this.workers.filter((w) => w !== slot);
      this.wakeOnlineWaiters();
      for (const task of slot.pending.values()) task.reject(error);
      slot.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', () => fail(new Error('hash worker exited')));
    worker.unref();
    this.workers.push(slot);
    return slot;
  }

  private wakeOnlineWaiters(): void {
    const waiting = this.onlineWaiters;
    this.onlineWaiters = [];
    for (const wake of waiting) wake();
  }

  /** A worker with work keeps the process alive (its answer is awaited); an idle one does not. */
  private busy(slot: PoolWorker): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    slot.worker.ref();
  }

  private maybeIdle(): void {
    for (const w of this.workers) if (w.pending.size === 0) w.worker.unref();
    if (this.workers.some((w) => w.pending.size > 0)) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.close(), IDLE_END_MS);
    this.idleTimer.unref();
  }
}

/** Bytes {@link digestInSlices} hashes between two looks at the clock: ~1.5 ms of MD5. */
const SLICE_STEP_BYTES = 1024 * 1024;

/**
 * The `algorithm` digest of `bytes`, computed on the calling thread in 1 MiB steps, giving the
 * event loop a turn whenever a time slice (core/time-slice.ts, 4 ms) is spent. For one large
 * input that must be hashed before anything else can happen (a single Put Blob of a caller's
 * byte array), this is cheaper than a worker, which needs the bytes copied into shared memory
 * first: that copy into fresh memory cost more than the MD5 itself (the first digest of a new
 * process, 2 cores: 64 MiB in ~100 ms against ~385 ms through the pool, 256 MiB in ~380 ms
 * against ~1.4 s).
 */
export async function digestInSlices(bytes: Uint8Array, algorithm: HashAlgorithm): Promise<Buffer> {
  const hash = createHash(algorithm);
  const slice = new TimeSlice();
  for (let at = 0; at < bytes.byteLength; at += SLICE_STEP_BYTES) {
    hash.update(bytes.subarray(at, Math.min(bytes.byteLength, at + SLICE_STEP_BYTES)));
    if (slice.expired) await slice.yield();
  }
  return hash.digest();
}

let shared: HashPool | undefined;

/** {@link HashPool.fillFromFile} on the process-wide pool: read a file range into `pieces` and hash it. */
export function fillFromFileOffThread(fd: number, position: number, pieces: Uint8Array[], algorithm: HashAlgorithm): Promise<Buffer> {
  shared ??= new HashPool();
  return shared.fillFromFile(fd, position, pieces, algorithm);
}

/** The digest of `bytes`, computed by the process-wide {@link HashPool} (started on first use). */
export function hashOffThread(bytes: Uint8Array, algorithm: HashAlgorithm): Promise<Buffer> {
  shared ??= new HashPool();
  return shared.digest(bytes, algorithm);
}
