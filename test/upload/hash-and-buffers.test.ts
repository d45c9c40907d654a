/** The block-buffer pool and the off-thread hashing the uploader builds on. */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { open, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BufferPool, PIECE_BYTES, PiecePool, sizeClassOf } from '../../src/upload/buffer-pool.js';
import { HashPool, SHORT_READ, START_WORKER_AFTER_BYTES } from '../../src/upload/hash-pool.js';
import { openSource } from '../../src/upload/source.js';
import { countEventLoopTurns } from '../helpers/event-loop-turns.js';

const MIB = 1024 * 1024;

function sharedBytes(length: number): Buffer {
  const b = Buffer.from(new SharedArrayBuffer(length));
  randomFillSync(b);
  return b;
}

describe('HashPool', () => {
  it('gives the same digests as the main thread, for shared and plain buffers, many at once', async () => {
    const pool = new HashPool(2);
    try {
      const inputs = [sharedBytes(3 * MIB), sharedBytes(MIB + 7), randomFillSync(Buffer.alloc(2 * MIB)), sharedBytes(1000)];
      // A view into the middle of a shared buffer: only its range may be hashed.
      inputs.push(inputs[0]!.subarray(MIB / 2, MIB / 2 + MIB));
      for (const algorithm of ['md5', 'sha256'] as const) {
        const got = await Promise.all(inputs.map((b) => pool.digest(b, algorithm)));
        const want = inputs.map((b) => createHash(algorithm).update(b).digest());
        expect(got.map((d) => d.toString('hex'))).toEqual(want.map((d) => d.toString('hex')));
      }
    } finally {
      await pool.close();
    }
  });

  it('hashes on the calling thread until it has hashed what a worker costs to start, then starts one and uses it once online', async () => {
    const pool = new HashPool(1);
    try {
      const bytes = sharedBytes(2 * MIB);
      const want = createHash('md5').update(bytes).digest('hex');
      // A small upload's worth: no worker is started for it.
      const blocks = START_WORKER_AFTER_BYTES / bytes.byteLength;
      for (let i = 0; i < blocks; i++) expect((await pool.digest(bytes, 'md5')).toString('hex')).toBe(want);
      expect(pool.done).toEqual({ worker: 0, inline: blocks });
      expect(pool.running).toBe(0);
      // One more: a worker starts, but a worker takes tens of ms to come up, so this one is hashed here too.
      expect((await pool.digest(bytes, 'md5')).toString('hex')).toBe(want);
      expect(pool.done).toEqual({ worker: 0, inline: blocks + 1 });
      expect(pool.running).toBe(1);
      expect(await pool.whenOnline()).toBe(true);
      // Online now: the work goes to it.
      expect((await pool.digest(bytes, 'md5')).toString('hex')).toBe(want);
      expect(pool.done).toEqual({ worker: 1, inline: blocks + 1 });
      // Ended (as after an idle time), the pool counts again from zero before starting a worker.
      await pool.close();
      expect((await pool.digest(bytes, 'md5')).toString('hex')).toBe(want);
      expect(pool.running).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('sends an input that alone would hold the calling thread longer than a worker takes to start to a worker, waiting for it', async () => {
    const pool = new HashPool(1);
    const dir = await mkdtemp(join(tmpdir(), 'large-input-'));
    try {
      const bytes = sharedBytes(START_WORKER_AFTER_BYTES);
      expect((await pool.digest(bytes, 'md5')).equals(createHash('md5').update(bytes).digest())).toBe(true);
      expect(pool.done).toEqual({ worker: 1, inline: 0 });
      // The same for a file range read into pieces, once the workers ended (as after an idle time).
      await pool.close();
      const file = join(dir, 'data.bin');
      await writeFile(file, bytes);
      const handle = await open(file, 'r');
      try {
        const pieces = new PiecePool().lease(START_WORKER_AFTER_BYTES).pieces;
        expect((await pool.fillFromFile(handle.fd, 0, pieces, 'sha256')).equals(createHash('sha256').update(bytes).digest())).toBe(true);
        expect(Buffer.concat(pieces).equals(bytes)).toBe(true);
        expect(pool.done).toEqual({ worker: 2, inline: 0 });
      } finally {
        await handle.close();
      }
    } finally {
      await pool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('hashes a large input on a worker in a new process that has nothing else to do, even one that evaluates ESM, and lets it end', async () => {
    // Nothing but the worker's start keeps this process alive while the digest waits for it; and
    // with --input-type=module, the worker's eval'd program runs as ESM.
    const code = [
      `const { HashPool } = await import(${JSON.stringify(pathToFileURL(resolve('src/upload/hash-pool.ts')).href)});`,
      'const pool = new HashPool(1);',
      `const digest = await pool.digest(Buffer.alloc(${START_WORKER_AFTER_BYTES + MIB}, 7), 'md5');`,
      "console.log(digest.toString('hex'), JSON.stringify(pool.done));",
    ].join('\n');
    const { stdout, code: exitCode } = await new Promise<{ stdout: string; code: number | null }>((done, fail) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', fail);
      child.on('close', (c) => done({ stdout: out, code: c }));
    });
    const want = createHash('md5').update(Buffer.alloc(START_WORKER_AFTER_BYTES + MIB, 7)).digest('hex');
    expect({ stdout: stdout.trim(), exitCode }).toEqual({ stdout: `${want} {"worker":1,"inline":0}`, exitCode: 0 });
  });

  it('starts again after being closed, and never fails a digest because of a worker', async () => {
    const pool = new HashPool(1);
    const bytes = sharedBytes(2 * MIB);
    const want = createHash('md5').update(bytes).digest('hex');
    expect((await pool.digest(bytes, 'md5')).toString('hex')).toBe(want);
    // Closing while a digest is pending on the worker: it is answered on the main thread instead.
    expect(await pool.whenOnline()).toBe(true);
    const before = { ...pool.done };
    const pending = pool.digest(bytes, 'md5');
    await pool.close();
    expect((await pending).toString('hex')).toBe(want);
    expect(pool.done).toEqual({ worker: before.worker + 1, inline: before.inline + 1 });
    expect((await pool.digest(bytes, 'md5')).toString('hex')).toBe(want);
    // The same for plain buffers (copied whole into the staging buffers), many at once.
    const plain = randomFillSync(Buffer.alloc(9 * MIB + 3));
    const wantPlain = createHash('md5').update(plain).digest('hex');
    expect(await pool.whenOnline()).toBe(true);
    const streaming = [pool.digest(plain, 'md5'), pool.digest(plain, 'md5'), pool.digest(plain, 'md5')];
    await new Promise((r) => setTimeout(r, 5));
    await pool.close();
    expect((await Promise.all(streaming)).map((d) => d.toString('hex'))).toEqual([wantPlain, wantPlain, wantPlain]);
    expect((await pool.digest(plain, 'md5')).toString('hex')).toBe(wantPlain);
    await pool.close();
  });
});

describe('HashPool.fillFromFile', () => {
  it('reads a file range into the pieces once and hashes exactly those bytes, on a worker or inline', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fill-'));
    const file = join(dir, 'data.bin');
    const data = randomFillSync(Buffer.alloc(5 * MIB + 123));
    await writeFile(file, data);
    const handle = await open(file, 'r');
    const pool = new HashPool(1);
    try {
      const offset = MIB / 2 + 7;
      const length = 3 * MIB + 5;
      const want = createHash('md5').update(data.subarray(offset, offset + length)).digest('hex');
      // Before the worker is online and for plain pieces, the calling thread fills; shared pieces go to an online worker.
      const cases = [
        { pieces: new PiecePool().lease(length).pieces, done: { worker: 0, inline: 1 } },
        { pieces: new PiecePool().lease(length).pieces, online: true, done: { worker: 1, inline: 1 } },
        { pieces: [Buffer.alloc(2 * MIB), Buffer.alloc(length - 2 * MIB)], done: { worker: 1, inline: 2 } },
      ];
      for (const c of cases) {
        if (c.online) expect(await pool.whenOnline()).toBe(true);
        expect((await pool.fillFromFile(handle.fd, offset, c.pieces, 'md5')).toString('hex')).toBe(want);
        expect(Buffer.concat(c.pieces).equals(data.subarray(offset, offset + length))).toBe(true);
        expect(pool.done).toEqual(c.done);
      }
      // A file that ends before the range does is reported as such, not hashed short.
      const past = new PiecePool().lease(2 * MIB).pieces;
      await expect(pool.fillFromFile(handle.fd, data.length - MIB, past, 'md5')).rejects.toThrow(SHORT_READ);
    } finally {
      await pool.close();
      await handle.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('UploadSource.whole of a byte array', () => {
  it('hashes a large payload where it is, letting the event loop run, and keeps no copy of it', async () => {
    // Above what a worker is waited for: before, it went to one through a 64 MiB staging copy that stayed.
    const bytes = randomFillSync(Buffer.allocUnsafe(START_WORKER_AFTER_BYTES + 16 * MIB));
    const before = process.memoryUsage().arrayBuffers;
    const loop = countEventLoopTurns();
    const source = await openSource(bytes);
    const whole = await source.whole('md5');
    const turns = loop.stop();
    const grownBytes = process.memoryUsage().arrayBuffers - before;

    expect(whole.digest.equals(createHash('md5').update(bytes).digest())).toBe(true);
    // The request body is the caller's memory itself.
    expect(whole.body instanceof Uint8Array && whole.body.buffer).toBe(bytes.buffer);
    expect(grownBytes).toBeLessThan(8 * MIB);
    // ~70 ms of MD5 in 4 ms slices: other callbacks ran in between.
    expect(turns).toBeGreaterThan(3);
    whole.release(true);
    await source.close();
  });
});

describe('PiecePool', () => {
  it('lends 1 MiB shared pieces, reuses them only after a release that allows it, and caps what it keeps', () => {
    const pool = new PiecePool(3 * PIECE_BYTES);
    const a = pool.lease(2 * PIECE_BYTES + 10);
    expect(a.pieces.map((p) => p.length)).toEqual([PIECE_BYTES, PIECE_BYTES, 10]);
    expect(a.pieces[0]!.buffer).toBeInstanceOf(SharedArrayBuffer);
    const backings = a.pieces.map((p) => p.buffer);
    a.release(true);
    a.release(true); // idempotent: must not put the pieces on the free list twice
    expect(pool.idleBytes).toBe(3 * PIECE_BYTES);
    const b = pool.lease(3 * PIECE_BYTES);
    expect(b.pieces.every((p) => backings.includes(p.buffer))).toBe(true);
    expect(pool.idleBytes).toBe(0);
    // After a failed request the socket may still hold a piece: those are dropped, never reused.
    b.release(false);
    expect(pool.idleBytes).toBe(0);
    const c = pool.lease(5 * PIECE_BYTES);
    c.release(true);
    expect(pool.idleBytes).toBe(3 * PIECE_BYTES);
  });
});

describe('BufferPool', () => {
  it('reuses released buffers and never lends one buffer twice at a time', () => {
    const pool = new BufferPool();
    const a = pool.lease(4 * MIB);
    const b = pool.lease(4 * MIB);
    expect(a.bytes.buffer).not.toBe(b.bytes.buffer);
    expect(a.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    const backing = a.bytes.buffer;
    a.release();
    a.release(); // idempotent: must not put the buffer on the free list twice
    const c = pool.lease(2 * MIB);
    expect(c.bytes.buffer).toBe(backing);
    expect(c.bytes.length).toBe(2 * MIB);
    const d = pool.lease(2 * MIB);
    expect(d.bytes.buffer).not.toBe(backing);
    // A block larger than every free buffer gets a new one.
    c.release();
    const e = pool.lease(8 * MIB);
    expect(e.bytes.buffer).not.toBe(backing);
    expect(e.bytes.length).toBe(8 * MIB);
  });

  it('allocates in power-of-two classes, so a growing block reuses the buffer of the one before', () => {
    expect(sizeClassOf(100)).toBe(1 * MIB);
    expect(sizeClassOf(2 * MIB)).toBe(2 * MIB);
    expect(sizeClassOf(2 * MIB + 64 * 1024)).toBe(4 * MIB);
    const pool = new BufferPool();
    const a = pool.lease(2 * MIB + 64 * 1024);
    const backing = a.bytes.buffer;
    a.release();
    const b = pool.lease(3 * MIB + 512 * 1024);
    expect(b.bytes.buffer).toBe(backing);
    expect(b.bytes.length).toBe(3 * MIB + 512 * 1024);
  });

  it('keeps at most its idle-byte cap of free buffers (the largest), so memory is bounded', () => {
    const pool = new BufferPool(8 * MIB);
    const leases = [4, 4, 4, 2, 1].map((n) => pool.lease(n * MIB));
    const big = leases.slice(0, 2).map((l) => l.bytes.buffer);
    for (const l of leases) l.release();
    // 8 MiB idle at most: the two 4 MiB buffers; leasing three 4 MiB blocks reuses two of them.
    const again = [pool.lease(4 * MIB), pool.lease(4 * MIB), pool.lease(4 * MIB)];
    const reused = again.filter((l) => big.includes(l.bytes.buffer) || leases.some((x) => x.bytes.buffer === l.bytes.buffer));
    expect(reused).toHaveLength(2);
  });
});
