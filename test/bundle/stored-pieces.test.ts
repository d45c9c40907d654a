/**
 * Incompressible pieces of the bundle gzip stream: written as stored blocks, decided from the bytes
 * alone, valid deflate that later pieces may refer back into, and the same bytes every time.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parallelGzip, PIECE_BYTES } from '../../src/bundle/gzip.js';
import { looksIncompressible, storedBlocks } from '../../src/bundle/stored-pieces.js';
import { cleanupTemp, referenceGzip, run, tempDir } from './helpers.js';

afterAll(cleanupTemp);

async function gz(data: Buffer, concurrency = 2): Promise<Buffer> {
  const out: Buffer[] = [];
  // Uneven chunks, as the tar writer yields them.
  const chunks: Buffer[] = [];
  for (let at = 0, n = 1; at < data.length; at += n, n = (n * 7919) % 400_000 + 1) chunks.push(data.subarray(at, at + n));
  await pipeline(Readable.from(chunks, { objectMode: false }), parallelGzip(6, concurrency), async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) out.push(c);
  });
  return Buffer.concat(out);
}

const text = Buffer.from(Array.from({ length: 120_000 }, (_, i) => `    op_${i % 313} = PythonOperator(task_id="t${i % 97}")\n`).join(''));

describe('looksIncompressible', () => {
  it('is true for random bytes and false for text, 7-bit noise, repeated random blocks and short pieces', () => {
    expect(looksIncompressible(randomBytes(PIECE_BYTES))).toBe(true);
    expect(looksIncompressible(text.subarray(0, PIECE_BYTES))).toBe(false);
    expect(looksIncompressible(Buffer.from(randomBytes(PIECE_BYTES).map((b) => b & 0x7f)))).toBe(false);
    // High byte entropy, but every sample repeats within itself: level-1 deflate finds it.
    const block = randomBytes(1024);
    expect(looksIncompressible(Buffer.concat(Array.from({ length: 1024 }, () => block)))).toBe(false);
    expect(looksIncompressible(randomBytes(16 * 1024))).toBe(false);
  });

  it('deflates a piece that is random except where a sample falls in text', () => {
    const piece = randomBytes(PIECE_BYTES);
    text.copy(piece, PIECE_BYTES - 4096, 0, 4096); // the last sample
    expect(looksIncompressible(piece)).toBe(false);
  });
});

describe('storedBlocks', () => {
  it.each([0, 1, 65_535, 65_536, 200_000])('frames %i bytes as stored blocks that inflate back, final or not', (size) => {
    const data = randomBytes(size);
    const last = storedBlocks(data, true);
    expect(inflateRawSync(last).equals(data)).toBe(true);
    expect(last.length).toBe(size + 5 * Math.max(1, Math.ceil(size / 65_535)));
    // Not final: a sync-flushed stream may follow (here: an empty final block).
    const more = storedBlocks(data, false);
    expect(more.length).toBe(size + 5 * Math.ceil(size / 65_535));
    expect(inflateRawSync(Buffer.concat([more, Buffer.from([1, 0, 0, 0xff, 0xff])])).equals(data)).toBe(true);
  });
});

describe('parallelGzip with incompressible pieces', () => {
  // Text, random (stored), text that repeats what came before the random part (deflated with the
  // stored bytes in its window), a random tail shorter than a piece (deflated: too short to test).
  const data = Buffer.concat([text.subarray(0, PIECE_BYTES + 1000), randomBytes(3 * PIECE_BYTES), text.subarray(0, PIECE_BYTES), randomBytes(20_000)]);

  it('round-trips, stores the random pieces, and stays within a few bytes per 64 KiB of the input there', async () => {
    const out = await gz(data);
    expect(gunzipSync(out).equals(data)).toBe(true);
    const zlib = gzipSync(data, { level: 6 });
    expect(out.length).toBeLessThan(zlib.length * 1.01);
    // The stored pieces appear verbatim in the output.
    expect(out.includes(data.subarray(2 * PIECE_BYTES, 2 * PIECE_BYTES + 65_000))).toBe(true);
  });

  it('is exactly the reference framing: stored blocks for incompressible pieces, deflated pieces otherwise', async () => {
    const reference = referenceGzip(data, (piece, at, last) => {
      const stored = at >= PIECE_BYTES + 1000 && at + PIECE_BYTES <= PIECE_BYTES + 1000 + 3 * PIECE_BYTES;
      expect(looksIncompressible(piece)).toBe(stored);
      return stored ? storedBlocks(piece, last) : undefined;
    });
    expect((await gz(data)).equals(reference)).toBe(true);
  });

  it('gives the same bytes at every concurrency; random input costs 5 bytes per 64 KiB', async () => {
    const reference = await gz(data);
    expect((await gz(data, 1)).equals(reference)).toBe(true);
    expect((await gz(data, 4)).equals(reference)).toBe(true);
    const randomOnly = randomBytes(2 * PIECE_BYTES);
    const out = await gz(randomOnly);
    expect(gunzipSync(out).equals(randomOnly)).toBe(true);
    // Header, two stored pieces, the empty last piece (zlib's 2-byte final block), trailer.
    expect(out.length).toBe(10 + randomOnly.length + 5 * 2 * Math.ceil(PIECE_BYTES / 65_535) + 2 + 8);
    const tail = randomBytes(PIECE_BYTES + 40_000);
    expect(gunzipSync(await gz(tail)).equals(tail)).toBe(true);
  });

  it('is read by GNU gzip', async () => {
    const file = path.join(await tempDir(), 'mixed.gz');
    await writeFile(file, await gz(data));
    await run('gzip', ['-t', file]);
  });
});
