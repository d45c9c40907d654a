/**
 * Layer gzip framing: blocks that do not compress are written as stored members here instead of
 * by zlib, and must be zlib's exact bytes (layer digests, the registry's copies and the layer cache
 * all depend on them).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gzipMembers } from '../../src/bundle/gzip.js';

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
});
