/**
 * Gzipping a layer that sits in a file (an archive member) into a temp file, in the layer framing
 * of `gzipMembers` (the same bytes, so the same digests), without the stream machinery: the file
 * is read straight into a few recycled block buffers, a block that does not compress is written
 * from its own buffer (stored members reference it instead of copying it), and both digests are
 * taken on the way. Against a stream pipeline this drops one allocation and one copy of every byte
 * (the read chunks, the piece they were copied into, the stored member copied out of it), whose
 * page faults and garbage collection cost more than the copies themselves.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { toAbortError } from '../core/abort.js';
import { ErrorCodes, ImageError } from '../core/errors.js';
import { layerMember, type GzipMemberSettings } from '../bundle/gzip.js';
import type { BlobGrowth, GzipResult } from './blob.js';

/** Bytes `[start, start + size)` of the file at `path`. */
export interface FileRange {
  path: string;
  start: number;
  size: number;
}

/** Read exactly `length` bytes at `position` into `buf`; a file that ends first is a corrupt image source. */
async function readFully(handle: FileHandle, buf: Buffer, length: number, position: number, path: string): Promise<Buffer> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      throw new ImageError(ErrorCodes.IMAGE_INVALID_ARCHIVE, `${path} is shorter than the layer's range (ends before byte ${position + length}); the image source is corrupt.`, path);
    }
    filled += bytesRead;
  }
  return buf.subarray(0, length);
}

/**
 * Gzip `source` into `path` as `gzipMembers(settings)` would (`settings.blockBytes` must be > 0),
 * `settings.parallelBlocks` blocks compressed at once; with `growth`, each write is reported there
 * once on disk, so an upload can follow. At most `parallelBlocks + 1` block buffers exist.
 *
 * @throws AstroAbortError when `signal` fires
 */
export async function gzipFileRange(source: FileRange, path: string, settings: GzipMemberSettings, signal?: AbortSignal, growth?: BlobGrowth): Promise<GzipResult> {
  if (signal?.aborted) throw toAbortError(signal);
  const blockBytes = settings.blockBytes;
  // Empty input is one empty member; input that ends on a block boundary gets no empty one after it.
  const count = Math.max(1, Math.ceil(source.size / blockBytes));
  const rawHash = createHash('sha256');
  const gzHash = createHash('sha256');
  const free: Buffer[] = [];
  const jobs: Array<{ buf: Buffer; parts: Promise<Buffer[]> }> = [];
  let written = 0;
  const input = await open(source.path, 'r');
  let output: FileHandle | undefined;
  try {
    output = await open(path, 'w');
    const out = output;
    const read = (i: number): Promise<{ buf: Buffer; block: Buffer }> => {
      const buf = free.pop() ?? Buffer.allocUnsafeSlow(blockBytes);
      const length = Math.min(blockBytes, source.size - i * blockBytes);
      const p = readFully(input, buf, length, source.start + i * blockBytes, source.path).then((block) => ({ buf, block }));
      p.catch(() => undefined); // awaited in order below; this only avoids an unhandled rejection on early exit
      return p;
    };
    // Write the oldest block's member, then recycle its buffer (stored parts point into it).
    const finish = async (): Promise<void> => {
      const job = jobs.shift()!;
      const parts = await job.parts;
      let bytes = 0;
      for (const p of parts) {
        gzHash.update(p);
        bytes += p.length;
      }
      const { bytesWritten } = await out.writev(parts);
      if (bytesWritten !== bytes) throw new Error(`short write to ${path}`);
      written += bytes;
      growth?.grew(bytes);
      free.push(job.buf);
    };
    let next = read(0);
    for (let i = 0; i < count; i++) {
      const { buf, block } = await next;
      if (signal?.aborted) throw toAbortError(signal);
      // The next read goes on while this block is hashed and compressed.
      if (i + 1 < count) next = read(i + 1);
      rawHash.update(block);
      const parts = layerMember(block, settings);
      parts.catch(() => undefined); // awaited in order by finish(); this only avoids an unhandled rejection on early exit
      jobs.push({ buf, parts });
      while (jobs.length >= Math.max(1, settings.parallelBlocks)) await finish();
    }
    while (jobs.length > 0) await finish();
  } catch (err) {
    // Let every job still running end before the buffers and files go.
    await Promise.allSettled(jobs.map((j) => j.parts));
    if (signal?.aborted) throw toAbortError(signal);
    throw err;
  } finally {
    await output?.close();
    await input.close();
  }
  return { path, digest: `sha256:${gzHash.digest('hex')}`, size: written, diffId: `sha256:${rawHash.digest('hex')}`, rawSize: source.size };
}
