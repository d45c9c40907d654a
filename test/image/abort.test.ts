/**
 * Cancellation in the image module's local steps (gzip and hash a layer, spool an export, gunzip
 * an archive): an abort must reject with AstroAbortError (`ASTRO_ABORTED`, the signal's reason as
 * `cause`), never with the raw reason or Node's own AbortError. No daemon or registry needed.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, isAstroError } from '../../src/index.js';
import { inspectImage } from '../../src/image/index.js';
import { gzipToFile, hashStream, TempSpace, type GzipSettings } from '../../src/image/blob.js';
import { RegistryClient } from '../../src/image/registry-client.js';
import { SpooledArchive } from '../../src/image/spool.js';
import { makeImage, makeTar, noise, writeLegacyArchive } from './fixtures.js';
import { rejectionOf } from '../helpers/rejection.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-abort-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BLOCKED: GzipSettings = { level: 1, blockBytes: 64 * 1024, parallelBlocks: 2 };
const SINGLE: GzipSettings = { level: 1, blockBytes: 0, parallelBlocks: 1 };

/** Yields `data` in `chunk`-byte pieces and aborts `controller` after `abortAfter` pieces. */
async function* abortingSource(data: Buffer, chunk: number, abortAfter: number, controller: AbortController, reason: unknown): AsyncGenerator<Buffer> {
  let n = 0;
  for (let i = 0; i < data.length; i += chunk) {
    if (n++ === abortAfter) controller.abort(reason);
    yield data.subarray(i, i + chunk);
  }
}

function expectAbort(err: unknown, reason: unknown): void {
  expect(isAstroError(err, ErrorCodes.ABORTED), `expected ASTRO_ABORTED, got ${String(err)}`).toBe(true);
  expect((err as Error).name).toBe('AstroAbortError');
  // The cause is the signal's reason (as sanitised by the error family).
  const cause = (err as Error).cause as Error | undefined;
  if (reason instanceof Error) expect(cause?.message).toBe(reason.message);
}

describe('aborting the layer gzip and hash path (blob.ts)', () => {
  for (const [label, settings] of [
    ['parallel blocks', BLOCKED],
    ['single member (stream pipeline)', SINGLE],
  ] as const) {
    it(`gzipToFile rejects with AstroAbortError mid-layer (${label})`, async () => {
      const controller = new AbortController();
      const reason = new Error('user pressed ctrl-c');
      const src = Readable.from(abortingSource(noise(1024 * 1024), 16 * 1024, 3, controller, reason));
      const err = await rejectionOf(gzipToFile(src, join(dir, `layer-${settings.blockBytes}.gz`), settings, controller.signal));
      expectAbort(err, reason);
    });

    it(`gzipToFile rejects with AstroAbortError for a signal aborted before the start (${label})`, async () => {
      const controller = new AbortController();
      controller.abort(new Error('already cancelled'));
      const err = await rejectionOf(gzipToFile(Readable.from([noise(1000)]), join(dir, `pre-${settings.blockBytes}.gz`), settings, controller.signal));
      expectAbort(err, controller.signal.reason);
    });
  }

  it('a DOMException reason (plain controller.abort()) still surfaces as AstroAbortError', async () => {
    const controller = new AbortController();
    const src = abortingSource(noise(256 * 1024), 16 * 1024, 2, controller, undefined);
    const err = await rejectionOf(gzipToFile(src, join(dir, 'dom.gz'), BLOCKED, controller.signal));
    expectAbort(err, undefined);
    expect(((err as Error).cause as Error).name).toBe('AbortError');
  });

  it('hashStream rejects with AstroAbortError', async () => {
    const controller = new AbortController();
    const reason = new Error('stop hashing');
    const err = await rejectionOf(hashStream(abortingSource(noise(256 * 1024), 16 * 1024, 2, controller, reason), controller.signal));
    expectAbort(err, reason);
  });
});

describe('aborting the spool of an export stream (spool.ts)', () => {
  const settle = async (fn: (temp: TempSpace) => Promise<unknown>) => {
    const temp = new TempSpace(await mkdtemp(join(dir, 'spool-')));
    try {
      return await rejectionOf(fn(temp));
    } finally {
      await temp.dispose();
    }
  };

  it('rejects with AstroAbortError when the signal fired before the next member', async () => {
    const tar = makeTar([
      { name: 'manifest.json', content: '[]' },
      { name: 'other.json', content: '{}' },
    ]);
    const controller = new AbortController();
    const reason = new Error('cancelled between members');
    let members = 0;
    const err = await settle((temp) =>
      new SpooledArchive().spool(abortingSource(tar, 512, 2, controller, reason), temp, BLOCKED, () => (members += 1), controller.signal),
    );
    expectAbort(err, reason);
  });

  it('rejects with AstroAbortError while gzipping a large uncompressed layer', async () => {
    const tar = makeTar([{ name: 'blobs/sha256/aaaa', content: noise(2 * 1024 * 1024) }]);
    const controller = new AbortController();
    const reason = new Error('cancelled mid-layer');
    const err = await settle((temp) =>
      new SpooledArchive().spool(abortingSource(tar, 64 * 1024, 8, controller, reason), temp, BLOCKED, () => undefined, controller.signal),
    );
    expectAbort(err, reason);
  });

  it('rejects with AstroAbortError while storing a large already-compressed layer', async () => {
    // Starts with the gzip magic, so it is stored as it is (the stream pipeline path).
    const layer = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), noise(2 * 1024 * 1024)]);
    const tar = makeTar([{ name: 'blobs/sha256/bbbb', content: layer }]);
    const controller = new AbortController();
    const reason = new Error('cancelled mid-copy');
    const err = await settle((temp) =>
      new SpooledArchive().spool(abortingSource(tar, 64 * 1024, 8, controller, reason), temp, BLOCKED, () => undefined, controller.signal),
    );
    expectAbort(err, reason);
  });
});

describe('aborting the gunzip of a .tar.gz archive (source.ts)', () => {
  it('inspectImage rejects with AstroAbortError, not Node\'s AbortError', async () => {
    const image = makeImage({ layers: [{ 'a.txt': 'hello' }] });
    const plain = join(dir, 'image.tar');
    await writeLegacyArchive(plain, image, 'x/y:1');
    const gz = join(dir, 'image.tar.gz');
    await writeFile(gz, gzipSync(await readFile(plain)));
    const controller = new AbortController();
    const reason = new Error('no longer needed');
    controller.abort(reason);
    const err = await rejectionOf(inspectImage({ archivePath: gz }, { signal: controller.signal }));
    expectAbort(err, reason);
  });
});

describe('aborting a registry token request (registry-client.ts)', () => {
  it('rejects with AstroAbortError when the abort comes while the token body is arriving', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled during auth');
    const stalled: ServerResponse[] = [];
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/v2/')) {
        const { port } = server.address() as AddressInfo;
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="test"`, 'content-length': '0' });
        res.end();
        return;
      }
      // The token service sends its headers and part of the body, then stalls; the caller aborts.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"token":"', () => setTimeout(() => controller.abort(reason), 50));
      stalled.push(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = new RegistryClient({ host: `127.0.0.1:${port}`, repository: 'team/app', requestTimeoutMs: 10_000 });
    try {
      const err = await rejectionOf(client.ping(controller.signal));
      expectAbort(err, reason);
    } finally {
      for (const res of stalled) res.destroy();
      await client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
