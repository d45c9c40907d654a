/**
 * Block digests computed off the main thread.
 *
 * Every block's MD5 must be known before its request starts (it is both the `Content-MD5` header
 * and part of the block ID), and Node's hashes are synchronous: hashed inline, 64 MiB of MD5 holds
 * the event loop for about 0.1 s during which no socket is written. A small worker pool hashes the
 * next blocks while the current ones are on the wire, so on a fast link the digest costs no time.
 *
 * Only inputs backed by a `SharedArrayBuffer` (the uploader's block buffers, see buffer-pool.ts)
 * go to a worker, which reads them in place; small or plain inputs are hashed inline. Idle
 * workers do not keep the process alive and are ended after a short idle time. If workers cannot
 * be started (a restricted runtime), hashing falls back to the main thread.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Inputs below this size are hashed inline, in bytes. */
const INLINE_BELOW_BYTES = 512 * 1024;
/** Idle workers end after this long, in milliseconds. */
const IDLE_END_MS = 5_000;

/** The worker's whole program: hash what it is sent and answer with the digest. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', (task) => {
  try {
    const bytes = new Uint8Array(task.buffer, task.byteOffset, task.length);
    const digest = createHash(task.algorithm).update(bytes).digest();
    parentPort.postMessage({ id: task.id, digest }, [digest.buffer]);
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
}

function inlineDigest(bytes: Uint8Array, algorithm: HashAlgorithm): Buffer {
  return createHash(algorithm).update(bytes).digest();
}

/** A lazily started pool of hashing workers. One per process is enough: see {@link hashOffThread}. */
export class HashPool {
  private workers: PoolWorker[] = [];
  private nextId = 1;
  private turn = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private unavailable = false;

  /** @param size Workers to run (default: one per spare core, at least 1, at most 2). */
  constructor(private readonly size = Math.max(1, Math.min(2, availableParallelism() - 1))) {}

  /** The `algorithm` digest of `bytes`; never rejects because of the pool (falls back inline). */
  async digest(bytes: Uint8Array, algorithm: HashAlgorithm): Promise<Buffer> {
    // Only shared memory goes to a worker: copying a plain buffer into fresh memory costs more
    // (page faults) than hashing it here.
    const shared = typeof SharedArrayBuffer === 'function' && bytes.buffer instanceof SharedArrayBuffer;
    if (!shared || bytes.byteLength < INLINE_BELOW_BYTES || this.unavailable) return inlineDigest(bytes, algorithm);
    const slot = this.pick();
    if (!slot) return inlineDigest(bytes, algorithm);
    const id = this.nextId++;
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        this.busy(slot);
        slot.worker.postMessage({ id, algorithm, buffer: bytes.buffer, byteOffset: bytes.byteOffset, length: bytes.byteLength });
      });
    } catch {
      // The worker died or refused the task: the main thread still gives the right answer.
      return inlineDigest(bytes, algorithm);
    }
  }

  /** End every worker now (pending digests fall back to the main thread). */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.worker.terminate().catch(() => 0)));
  }

  private pick(): PoolWorker | undefined {
    if (this.workers.length < this.size) {
      const started = this.start();
      if (started) return started;
      if (this.workers.length === 0) return undefined;
    }
    // Least loaded, ties broken round-robin.
    this.turn = (this.turn + 1) % this.workers.length;
    let best = this.workers[this.turn]!;
    for (const w of this.workers) if (w.pending.size < best.pending.size) best = w;
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
    const slot: PoolWorker = { worker, pending: new Map() };
    worker.on('message', (m: { id: number; digest?: Uint8Array; error?: string }) => {
      const task = slot.pending.get(m.id);
      if (!task) return;
      slot.pending.delete(m.id);
      if (m.digest) task.resolve(Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength));
      else task.reject(new Error(m.error ?? 'hash worker failed'));
      this.maybeIdle();
    });
    const fail = (error: Error) => {
      this.workers = this.workers.filter((w) => w !== slot);
      for (const task of slot.pending.values()) task.reject(error);
      slot.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', () => fail(new Error('hash worker exited')));
    worker.unref();
    this.workers.push(slot);
    return slot;
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

let shared: HashPool | undefined;

/** The digest of `bytes`, computed by the process-wide {@link HashPool} (started on first use). */
export function hashOffThread(bytes: Uint8Array, algorithm: HashAlgorithm): Promise<Buffer> {
  shared ??= new HashPool();
  return shared.digest(bytes, algorithm);
}
