/**
 * Layer gzip framing: blocks that do not compress are written as stored members here instead of
 * by zlib, and must be zlib's exact bytes (layer digests, the registry's copies and the layer cache
 * all depend on them).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gzipMembers } from '../../src/bundle/gzip.js';
import { BlobGrowth, fileData, ReadBuffers } from '../../src/image/blob.js';
import { gzipFileRange } from '../../src/image/layer-gzip.js';
import { isAstroError } from '../../src/core/errors.js';

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of gen) out.push(b);
  return Buffer.concat(out);
}

describe('layer gzip members', () => {
  it('stores random blocks byte for byte as zlib level 0 does, and deflates the others as before', async () => {
    const blockBytes = 256 * 1024;
    const text = Buffer.from('import os\nprint(os.getcwd())\n'.repeat(20_000));
    const input = Buffer.concat([randomBytes(blockBytes * 2 + 12345), text, randomBytes(70_000)]);
    const out = await collect(gzipMembers({ level: 6, blockBytes, parallelBlocks: 3 })(Readable.from([input], { objectMode: false })));
    const options = { memLevel: 9, chunkSize: blockBytes + 64 * 1024 };
    const expected: Buffer[] = [];
    for (let at = 0; at < input.length; at += blockBytes) {
      const block = input.subarray(at, at + blockBytes);
      const random = at < blockBytes * 2 + 12345 - blockBytes || at >= blockBytes * 2 + 12345 + text.length - blockBytes;
      const compressible = gzipSync(block, { ...options, level: 6 });
      // Reference framing: zlib level 0 for blocks whose samples do not shrink.
      expected.push(random && compressible.length > block.length * 0.98 ? gzipSync(block, { ...options, level: 0 }) : compressible);
    }
    expect(gunzipSync(out).equals(input)).toBe(true);
    expect(out.equals(Buffer.concat(expected))).toBe(true);
  });

  it("gives zlib's bytes when a block deflates far worse than its first sample (zlib's output overflows the buffer sized from it)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layer-gzip-'));
    try {
      const blockBytes = 256 * 1024;
      // Each block starts with 20 KiB of one repeated line (its first sample deflates to ~1%), and
      // the rest is random: zlib's member is ~15x the buffer the sample suggests.
      const block = () => Buffer.concat([Buffer.from('x = 1\n'.repeat(20 * 1024 / 6 + 1)).subarray(0, 20 * 1024), randomBytes(blockBytes - 20 * 1024)]);
      const input = Buffer.concat([block(), block(), block().subarray(0, 100_000)]);
      const settings = { level: 6, blockBytes, parallelBlocks: 2 };
      const expected: Buffer[] = [];
      for (let at = 0; at < input.length; at += blockBytes) expected.push(gzipSync(input.subarray(at, at + blockBytes), { level: 6, memLevel: 9 }));
      const streamed = await collect(gzipMembers(settings)(Readable.from([input], { objectMode: false })));
      expect(streamed.equals(Buffer.concat(expected))).toBe(true);
      const file = join(dir, 'layer.tar');
      await writeFile(file, input);
      const result = await gzipFileRange({ path: file, start: 0, size: input.length }, join(dir, 'out.gz'), settings);
      expect((await readFile(join(dir, 'out.gz'))).equals(Buffer.concat(expected))).toBe(true);
      expect(gunzipSync(await readFile(join(dir, 'out.gz'))).equals(input)).toBe(true);
      expect(result.size).toBe(Buffer.concat(expected).length);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives the same bytes and digests from a range of a file (read into recycled blocks) as the stream framing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layer-gzip-'));
    try {
      const blockBytes = 256 * 1024;
      const text = Buffer.from('def handler(event):\n    return {"ok": True}\n'.repeat(15_000));
      const body = Buffer.concat([randomBytes(blockBytes + 777), text, randomBytes(blockBytes * 2)]);
      // The layer sits inside a bigger file (an archive member), after 1000 unrelated bytes.
      const file = join(dir, 'archive.tar');
      await writeFile(file, Buffer.concat([randomBytes(1000), body, randomBytes(500)]));
      const settings = { level: 6, blockBytes, parallelBlocks: 3 };
      // Sizes: empty, one byte, exactly one and two blocks (no empty member after), the mixed body.
      for (const size of [0, 1, blockBytes, blockBytes * 2, body.length]) {
        const input = body.subarray(0, size);
        const expected = await collect(gzipMembers(settings)(Readable.from([input], { objectMode: false })));
        const growth = new BlobGrowth();
        const out = join(dir, `out-${size}.gz`);
        const result = await gzipFileRange({ path: file, start: 1000, size }, out, settings, undefined, growth);
        const written = await readFile(out);
        expect(written.equals(expected), `size ${size}`).toBe(true);
        expect(result.digest).toBe(`sha256:${createHash('sha256').update(expected).digest('hex')}`);
        expect(result.diffId).toBe(`sha256:${createHash('sha256').update(input).digest('hex')}`);
        expect([result.size, result.rawSize, growth.written]).toEqual([expected.length, size, expected.length]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops with AstroAbortError when aborted, and fails on a file shorter than its range', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layer-gzip-'));
    try {
      const file = join(dir, 'layer.tar');
      await writeFile(file, randomBytes(600_000));
      const settings = { level: 6, blockBytes: 64 * 1024, parallelBlocks: 2 };
      const aborted = AbortSignal.abort();
      const abortErr = await gzipFileRange({ path: file, start: 0, size: 600_000 }, join(dir, 'a.gz'), settings, aborted).catch((e: unknown) => e);
      expect(isAstroError(abortErr) && abortErr.code).toBe('ASTRO_ABORTED');
      const short = await gzipFileRange({ path: file, start: 0, size: 700_000 }, join(dir, 'b.gz'), settings).catch((e: unknown) => e);
      expect(isAstroError(short) && short.code).toBe('ASTRO_IMAGE_INVALID_ARCHIVE');
      expect((short as Error).message).toMatch(/shorter than the layer's range \(ends before byte 6/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('upload read buffers', () => {
  it('reads a file range into lent buffers, reused only after a body settled as reusable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'read-buffers-'));
    try {
      const bytes = randomBytes(300_000);
      const file = join(dir, 'blob');
      await writeFile(file, bytes);
      const data = fileData(file, 1000, 250_000);
      const buffers = new ReadBuffers(64 * 1024);
      const read = async (start: number, end: number) => Buffer.concat(await data.open(start, end, buffers).toArray());
      expect((await read(10, 200_000)).equals(bytes.subarray(1010, 201_000))).toBe(true);
      const first = buffers.lend();
      buffers.settle(true);
      // Given back: the next body reads into the same memory.
      expect(buffers.lend()).toBe(first);
      buffers.settle(false);
      // Dropped (a failed request's socket may still hold it): never lent again.
      expect(buffers.lend()).not.toBe(first);
      expect((await read(0, 250_000)).equals(bytes.subarray(1000, 251_000))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
