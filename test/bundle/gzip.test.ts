/**
 * The parallel gzip stage: one valid gzip member whatever the input size or chunking, the same
 * bytes for the same input, readable by the real gzip and by Python.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, deflateRawSync, gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { deflateJobs, MAX_DEFLATE_JOBS, OutputMeter, parallelGzip, PIECE_BYTES, PIECES_IN_FLIGHT, threadPoolSize } from '../../src/bundle/gzip.js';
import { cleanupTemp, python, referenceGzip, run, tempDir } from './helpers.js';

afterAll(cleanupTemp);

async function gz(chunks: Buffer[], level = 6, concurrency = 2): Promise<Buffer> {
  const out: Buffer[] = [];
  const meter = new OutputMeter();
  await pipeline(Readable.from(chunks, { objectMode: false }), parallelGzip(level, concurrency), meter, async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) out.push(c);
  });
  const all = Buffer.concat(out);
  expect(meter.bytes).toBe(all.length);
  return all;
}

/** Split `data` into pieces of pseudo-random sizes. */
function split(data: Buffer, seed: number): Buffer[] {
  const parts: Buffer[] = [];
  let i = 0;
  let x = seed;
  while (i < data.length) {
    x = (x * 1103515245 + 12345) >>> 0;
    const n = 1 + (x % 300_000);
    parts.push(data.subarray(i, i + n));
    i += n;
  }
  return parts;
}

describe('parallelGzip', () => {
  const text = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i % 977} of some dag code\n`).join(''));
  const sizes = [0, 1, PIECE_BYTES - 1, PIECE_BYTES, PIECE_BYTES + 1, 3 * PIECE_BYTES + 12345];

  it.each(sizes)('round-trips %i bytes (one gzip member, header without timestamp)', async (size) => {
    const data = Buffer.concat([text, randomBytes(size)]).subarray(0, size);
    const out = await gz([data]);
    expect(gunzipSync(out).equals(data)).toBe(true);
    expect([...out.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]);
    expect(out.readUInt32LE(4)).toBe(0);
    expect(out[9]).toBe(255);
  });

  it('gives the same bytes whatever the input chunking and concurrency', async () => {
    const data = Buffer.concat([text, randomBytes(PIECE_BYTES), text]);
    const reference = await gz([data]);
    expect((await gz(split(data, 1))).equals(reference)).toBe(true);
    expect((await gz(split(data, 7), 6, 4)).equals(reference)).toBe(true);
    expect((await gz(split(data, 3), 6, 1)).equals(reference)).toBe(true);
    expect((await gz(split(data, 9), 6, 16)).equals(reference)).toBe(true);
  });

  it('is exactly the pieces deflated one by one (dictionary, sync flush), whatever the output buffer sizes', async () => {
    // Text, then 7-bit random bytes (deflated, as they compress a little, to more output than the
    // buffer sized from the text pieces), then text again: the bytes must not depend on how
    // zlib's output was buffered.
    const noisy = randomBytes(2 * PIECE_BYTES + 777).map((b) => b & 0x7f);
    const data = Buffer.concat([text.subarray(0, 3 * PIECE_BYTES), noisy, text.subarray(0, PIECE_BYTES + 5)]);
    const out = await gz(split(data, 5));
    expect(out.equals(referenceGzip(data))).toBe(true);
    expect(gunzipSync(out).equals(data)).toBe(true);
  });

  it('gives the same bytes whether or not the previous piece finished before the next one started', async () => {
    // zlib ends a sync flush with a second empty stored block when its output buffer fills up
    // during the first one, so a piece's bytes depend on the output buffer it is given. Crafted
    // input: a first piece of zeros (deflates to a few hundred bytes), then a piece whose
    // deflate output ends just past 64 KiB, the buffer the first piece's output once suggested.
    const level = 3;
    const zeros = Buffer.alloc(PIECE_BYTES);
    const noise = Buffer.alloc(PIECE_BYTES);
    for (let i = 0, x = 12345; i < noise.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      noise[i] = x >>> 24;
    }
    const second = (r: number) => Buffer.concat([noise.subarray(0, r), zeros.subarray(r)]);
    const deflated = (r: number, chunkSize: number) =>
      deflateRawSync(second(r), { level, finishFlush: constants.Z_SYNC_FLUSH, dictionary: zeros.subarray(PIECE_BYTES - 32 * 1024), chunkSize });
    const smallBuffer = 64 * 1024;
    // The fewest noise bytes whose piece deflates to at least 64 KiB, then the next few.
    let lo = 0;
    let hi = smallBuffer;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (deflated(mid, 2 * PIECE_BYTES).length >= smallBuffer) hi = mid;
      else lo = mid + 1;
    }
    const r = Array.from({ length: 16 }, (_, i) => lo + i).find((n) => !deflated(n, smallBuffer).equals(deflated(n, 2 * PIECE_BYTES)));
    // Precondition: zlib does write other bytes into a 64 KiB buffer for this piece.
    expect(r).toBeDefined();
    const data = Buffer.concat([zeros, second(r!), Buffer.from('tail')]);

    // All input at once: the second piece starts while the first is still being deflated.
    const together = await gz([data], level, 4);
    // The second piece only after the first one is done: one job at a time, or a source that pauses.
    const oneByOne = await gz([data], level, 1);
    async function* paused() {
      yield data.subarray(0, PIECE_BYTES);
      await new Promise((resolve) => setTimeout(resolve, 100));
      yield data.subarray(PIECE_BYTES);
    }
    const chunks: Buffer[] = [];
    for await (const c of parallelGzip(level, 4)(paused())) chunks.push(Buffer.from(c));
    const afterPause = Buffer.concat(chunks);

    expect([oneByOne.length, afterPause.length]).toEqual([together.length, together.length]);
    expect(oneByOne.equals(together)).toBe(true);
    expect(afterPause.equals(together)).toBe(true);
    expect(together.equals(referenceGzip(data, undefined, level))).toBe(true);
    expect(gunzipSync(together).equals(data)).toBe(true);
  });

  it('compresses about as well as one zlib stream, and is read by gzip and Python', async () => {
    const out = await gz([text, text]);
    const single = (await import('node:zlib')).gzipSync(Buffer.concat([text, text]), { level: 6 });
    expect(out.length).toBeLessThan(single.length * 1.02);
    const dir = await tempDir();
    const file = path.join(dir, 'x.gz');
    await writeFile(file, out);
    await run('gzip', ['-t', file]);
    const n = await python<number>('import gzip, json, sys; print(json.dumps(len(gzip.open(json.load(sys.stdin)).read())))', file);
    expect(n).toBe(text.length * 2);
  });
});

describe('deflate jobs in flight', () => {
  it('reads UV_THREADPOOL_SIZE as libuv does', () => {
    expect(threadPoolSize({})).toBe(4);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '16' })).toBe(16);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: ' 8threads' })).toBe(8);
    // atoi gives 0 for these, which libuv raises to one thread.
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '0' })).toBe(1);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: 'many' })).toBe(1);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '' })).toBe(1);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '5000' })).toBe(1024);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '-1' })).toBe(1024);
  });

  it('keeps four in flight unless a larger pool has cores to run on, and at most 16', () => {
    // libuv's default pool, on any machine.
    expect(deflateJobs(4, 2)).toBe(PIECES_IN_FLIGHT);
    expect(deflateJobs(4, 64)).toBe(PIECES_IN_FLIGHT);
    // A larger pool: one job per thread, but no more than the cores.
    expect(deflateJobs(16, 16)).toBe(16);
    expect(deflateJobs(16, 8)).toBe(8);
    expect(deflateJobs(8, 2)).toBe(PIECES_IN_FLIGHT);
    // Memory: no more than 16 per stream, however many threads and cores.
    expect(deflateJobs(64, 64)).toBe(MAX_DEFLATE_JOBS);
    expect(MAX_DEFLATE_JOBS).toBe(16);
    // A smaller pool still gets four: the jobs queue, as with libuv's default pool and two cores.
    expect(deflateJobs(1, 8)).toBe(PIECES_IN_FLIGHT);
  });
});
