/**
 * A file that cannot be read mid-upload (a failing disk: EIO; here a descriptor gone: EBADF) ends
 * with a typed ASTRO_UPLOAD_SOURCE_UNREADABLE naming the file and the byte, on every read path, and
 * a body source that fails while a request streams it keeps its own typed error.
 */
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UploadError, isAstroError } from '../../src/core/errors.js';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';
import { sendBlobRequest } from '../../src/upload/blob-http.js';
import { BufferPool } from '../../src/upload/buffer-pool.js';
import { parseBlobSas } from '../../src/upload/sas.js';
import { INLINE_WHOLE_MAX_BYTES, openSource } from '../../src/upload/source.js';

const MIB = 1024 * 1024;
let dir: string;
let fake: FakeBlobServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'upload-source-errors-'));
  fake = await startFakeBlobServer();
});
afterAll(async () => {
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});

async function fileOf(name: string, size: number): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, randomFillSync(Buffer.alloc(size)));
  return file;
}

describe('an upload source whose reads fail', () => {
  it('ASTRO_UPLOAD_SOURCE_UNREADABLE, naming the file and the byte, from every read path (main thread, hash worker, streamed whole)', async () => {
    const small = await fileOf('small.bin', 3 * MIB);
    const large = await fileOf('large.bin', INLINE_WHOLE_MAX_BYTES + MIB);
    const reads: Array<[string, string, (s: Awaited<ReturnType<typeof openSource>>) => Promise<unknown>, number]> = [
      ['read (resume checks)', small, (s) => s.read(MIB, MIB, new BufferPool()), MIB],
      ['block (hash worker)', small, (s) => s.block(2 * MIB, MIB, 'md5'), 2 * MIB],
      ['whole, in memory', small, (s) => s.whole('md5'), 0],
      ['whole, streamed', large, (s) => s.whole('md5'), 0],
    ];
    for (const [what, file, read, at] of reads) {
      const source = await openSource(file);
      // The descriptor closed under the source: every read of it fails (EBADF), as reads of a
      // failing disk do (EIO). Read at once, before the descriptor number can be reused.
      await source.close();
      const error = await read(source).catch((e: unknown) => e);
      expect(error, what).toBeInstanceOf(UploadError);
      expect(error, what).toMatchObject({ code: 'ASTRO_UPLOAD_SOURCE_UNREADABLE', retryable: false });
      expect((error as Error).message, what).toContain(`Reading the upload source ${file} from byte ${at} failed:`);
      // The system's reason follows (through FileHandle: EBADF; the worker sees the closed handle's fd as -1).
      expect((error as Error).message, what).toMatch(/failed: (EBADF|(ERR_OUT_OF_RANGE )?The value of "fd" is out of range)/);
      expect((error as Error).cause, what).toBeDefined();
    }
  });

  it('a request whose body source fails rejects with that typed error, not as a failed request', async () => {
    const sas = parseBlobSas(fake.service.sasUrl(fake.url, 'dags', 'failing-body'));
    const failure = new UploadError('ASTRO_UPLOAD_SOURCE_UNREADABLE', 'Reading the upload source x from byte 65536 failed: EIO');
    const body = {
      byteLength: 4 * MIB,
      async *chunks() {
        yield Buffer.alloc(64 * 1024);
        throw failure;
      },
    };
    const error = await sendBlobRequest(
      { sas, dispatcher: undefined, signal: undefined },
      { phase: 'put-blob', method: 'PUT', params: {}, headers: { 'x-ms-blob-type': 'BlockBlob' }, body, timeoutMs: 10_000 },
    ).catch((e: unknown) => e);
    expect(error).toBe(failure);
    expect(isAstroError(error, 'ASTRO_UPLOAD_SOURCE_UNREADABLE')).toBe(true);
    expect(fake.service.read('dags', 'failing-body')).toBeUndefined();
  });
});
