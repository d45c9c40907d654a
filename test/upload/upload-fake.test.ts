/**
 * The uploader against the in-memory fake blob service (which, unlike Azurite, versions blobs),
 * through the fault proxy so every fault is a real socket event.
 */
import { appendFileSync, truncateSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';
import { createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { blockDigest, encodeBlockId } from '../../src/upload/block-id.js';
import { uploadBlockBlob, type UploadBlockBlobOptions } from '../../src/upload/index.js';
import { UploadJournal } from '../../src/upload/journal.js';
import { parseBlobSas } from '../../src/upload/sas.js';
import { EventLog, FAST, KIB, MIB, payload, payloadBytesUp, sameBytes, tempDir } from './helpers.js';

let fake: FakeBlobServer;
let proxy: FaultProxy;
let journal: { dir: string; cleanup: () => Promise<void> };
let blobCounter = 0;

beforeAll(async () => {
  fake = await startFakeBlobServer();
  proxy = await createFaultProxy({ target: fake.url });
});
afterAll(async () => {
  await proxy.close();
  await fake.close();
});
beforeEach(async () => {
  proxy.faults.clear();
  proxy.resetStats();
  journal = await tempDir('upload-journal-');
});
afterEach(async () => {
  await journal.cleanup();
});

function newBlob(permissions = 'cw', expiresInMs?: number) {
  const name = `deploy-${++blobCounter}/bundle.tar.gz`;
  const url = fake.service.sasUrl(proxy.url, 'dags', name, { permissions, ...(expiresInMs !== undefined ? { expiresInMs } : {}) });
  return { name, url, sig: new URL(url).searchParams.get('sig')! };
}

function opts(log?: EventLog, extra: UploadBlockBlobOptions = {}): UploadBlockBlobOptions {
  return { ...FAST, journalDir: journal.dir, ...(log ? { onEvent: log.onEvent } : {}), ...extra, retry: { ...FAST.retry, ...extra.retry } };
}

/** Bytes sent beyond the payload must stay within one block per fault. */
function expectResentWithinBudget(size: number, faults: number) {
  const resent = payloadBytesUp(proxy) - size;
  expect(resent).toBeGreaterThanOrEqual(0);
  expect(resent).toBeLessThanOrEqual(faults * FAST.maxBlockSizeBytes);
}

describe('uploadBlockBlob against the fake blob service', () => {
  it('sends a small payload as one Put Blob and returns the version id', async () => {
    const blob = newBlob();
    const data = payload(100 * KIB, 2);
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log));
    expect(result.mode).toBe('single');
    expect(proxy.stats.byRoute['blob.putBlob']?.requests).toBe(1);
    expect(proxy.stats.byRoute['blob.putBlock']).toBeUndefined();
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
    expect(result.versionId).toBe(fake.service.versions('dags', blob.name).at(-1)?.versionId);
    expect(log.of('upload:committed')[0]?.versionId).toBe(result.versionId);
  });

  it('stages a larger file as blocks and commits them once', async () => {
    const blob = newBlob();
    const data = payload(3 * MIB + 777, 3);
    const { dir, cleanup } = await tempDir('upload-src-');
    try {
      const file = join(dir, 'bundle.tar.gz');
      await writeFile(file, data);
      const log = new EventLog();
      const result = await uploadBlockBlob(blob.url, file, opts(log));
      expect(result).toMatchObject({ mode: 'blocks', bytes: data.length, retries: 0, resumed: false, bytesSent: data.length });
      expect(result.blocks).toBe(proxy.stats.byRoute['blob.putBlock']?.requests);
      expect(result.blocks).toBeGreaterThan(2);
      expect(proxy.stats.byRoute['blob.putBlockList']?.requests).toBe(1);
      expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
      expect(result.versionId).toBe(fake.service.versions('dags', blob.name).at(-1)?.versionId);
      const progress = log.of('upload:progress');
      expect(progress.at(-1)).toMatchObject({ bytesAcked: data.length, totalBytes: data.length });
    } finally {
      await cleanup();
    }
  });

  it('fails with a typed error when the commit has no x-ms-version-id, unless told not to care', async () => {
    const plain = await startFakeBlobServer({ versioning: false });
    try {
      for (const size of [10 * KIB, 2 * MIB]) {
        const url = plain.service.sasUrl(plain.url, 'dags', `nv-${size}`);
        const error = await uploadBlockBlob(url, payload(size), opts()).catch((e: unknown) => e);
        expect(isAstroError(error, 'ASTRO_UPLOAD_NO_VERSION_ID')).toBe(true);
        expect((error as Error).message).toMatch(/versioning/);
        const ok = await uploadBlockBlob(url, payload(size), opts(undefined, { requireVersionId: false }));
        expect(ok.versionId).toBe('');
      }
    } finally {
      await plain.close();
    }
  });

  const faultCases = [
    { name: '408 before the body', action: { kind: 'status', status: 408 } as const, cause: 'http-408', shrinks: true },
    { name: '408 after part of the body', action: { kind: 'status', status: 408, afterBodyBytes: 200 * KIB } as const, cause: 'http-408', shrinks: true },
    { name: 'a reset mid-body', action: { kind: 'reset', afterBodyBytes: 300 * KIB } as const, cause: 'reset', shrinks: true },
    { name: '503 ServerBusy', action: { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } } as const, cause: 'http-503', shrinks: false },
    { name: '500 OperationTimedOut', action: { kind: 'status', status: 500, headers: { 'x-ms-error-code': 'OperationTimedOut' } } as const, cause: 'http-500', shrinks: false },
  ];
  for (const c of faultCases) {
    it(`re-sends only the failed block after ${c.name}`, async () => {
      const blob = newBlob();
      const data = payload(4 * MIB + 5, 4);
      const firedBefore = proxy.faults.fired.length;
      proxy.faults.add({ route: 'blob.putBlock', nth: 2, action: c.action });
      proxy.faults.add({ route: 'blob.putBlock', nth: 5, action: c.action });
      const log = new EventLog();
      const result = await uploadBlockBlob(blob.url, data, opts(log));
      expect(proxy.faults.fired.length - firedBefore).toBe(2);
      expect(result.retries).toBe(2);
      const retries = log.of('upload:retry');
      expect(retries.map((r) => r.cause)).toEqual([c.cause, c.cause]);
      expect(retries.every((r) => r.phase === 'put-block' && typeof r.blockIndex === 'number')).toBe(true);
      const shrinks = log.of('upload:block-size').filter((e) => e.toBytes < e.fromBytes && e.reason === c.cause);
      if (c.shrinks) expect(shrinks.length).toBeGreaterThan(0);
      else expect(log.of('upload:block-size').some((e) => e.toBytes < e.fromBytes)).toBe(false);
      expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
      expectResentWithinBudget(data.length, 2);
    });
  }

  it('retries a block at once after its first reset and backs off after a second one or a 503', async () => {
    const blob = newBlob();
    const data = payload(2 * MIB, 6);
    // One stream, so the n-th Put Block is the n-th try of the blocks in order.
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, times: 2, action: { kind: 'reset', afterBodyBytes: 100 * KIB } });
    proxy.faults.add({ route: 'blob.putBlock', nth: 4, action: { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } } });
    const log = new EventLog();
    await uploadBlockBlob(blob.url, data, opts(log, { concurrency: 1, retry: { initialDelayMs: 400, maxDelayMs: 4000 } }));
    const retries = log.of('upload:retry').map((r) => ({ cause: r.cause, attempt: r.attempt, delayMs: r.delayMs }));
    expect(retries.map(({ cause, attempt }) => ({ cause, attempt }))).toEqual([
      { cause: 'reset', attempt: 1 },
      { cause: 'reset', attempt: 2 },
      { cause: 'http-503', attempt: 1 },
    ]);
    expect(retries[0]!.delayMs).toBeLessThanOrEqual(100);
    // Equal jitter: half of 400 * 2^(attempt - 1) fixed, half random.
    expect(retries[1]!.delayMs).toBeGreaterThanOrEqual(400);
    expect(retries[2]!.delayMs).toBeGreaterThanOrEqual(200);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('times out a stalled block and sends it again', async () => {
    const blob = newBlob();
    const data = payload(2 * MIB, 5);
    proxy.faults.add({ route: 'blob.putBlock', nth: 2, action: { kind: 'stall' } });
    const log = new EventLog();
    const started = Date.now();
    const result = await uploadBlockBlob(blob.url, data, opts(log, { tryTimeoutMs: 600 }));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(log.of('upload:retry').map((r) => r.cause)).toEqual(['timeout']);
    expect(log.of('upload:block-size').some((e) => e.reason === 'timeout')).toBe(true);
    expect(result.retries).toBe(1);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
    expectResentWithinBudget(data.length, 1);
  });

  it('scales the default per-try timeout with the block size and the measured rate', async () => {
    const blob = newBlob();
    const seen: Array<{ bytes: number; rate: number | undefined }> = [];
    await uploadBlockBlob(blob.url, payload(3 * MIB, 6), {
      ...opts(),
      tryTimeoutMs: (ctx) => {
        if (ctx.phase === 'put-block') seen.push({ bytes: ctx.bytes, rate: ctx.bytesPerSecond });
        return 30_000;
      },
    });
    expect(seen[0]?.rate).toBeUndefined();
    expect(seen.some((s) => typeof s.rate === 'number' && s.rate > 0)).toBe(true);
  });

  it('honours Retry-After on 429', async () => {
    const blob = newBlob();
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } });
    const log = new EventLog();
    const started = Date.now();
    await uploadBlockBlob(blob.url, payload(1 * MIB), opts(log));
    const retry = log.of('upload:retry')[0];
    expect(retry).toMatchObject({ cause: 'http-429', status: 429 });
    expect(retry!.delayMs).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('re-commits with <Latest> when the commit response is lost', async () => {
    const blob = newBlob();
    const data = payload(2 * MIB, 7);
    proxy.faults.add({ route: 'blob.putBlockList', action: { kind: 'dropResponse' } });
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log));
    expect(log.of('upload:retry')).toMatchObject([{ phase: 'commit', cause: 'reset' }]);
    const versions = fake.service.versions('dags', blob.name);
    // Both commits landed; the second one's version is the one returned.
    expect(versions).toHaveLength(2);
    expect(result.versionId).toBe(versions[1]!.versionId);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
    expect(proxy.stats.byRoute['blob.putBlock']?.bytesUp).toBe(data.length);
  });

  it('falls back from a single Put Blob to smaller blocks after a 408', async () => {
    const blob = newBlob();
    const data = payload(200 * KIB, 8);
    proxy.faults.add({ route: 'blob.putBlob', action: { kind: 'status', status: 408, afterBodyBytes: 64 * KIB } });
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log));
    expect(result.mode).toBe('blocks');
    expect(result.blocks).toBeGreaterThan(1);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('gives up with a typed, retryable error after retry.maxRetries', async () => {
    const blob = newBlob();
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, times: Infinity, action: { kind: 'status', status: 500 } });
    const error = await uploadBlockBlob(blob.url, payload(1 * MIB), opts(undefined, { retry: { maxRetries: 2 } })).catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_UPLOAD_FAILED')).toBe(true);
    expect(error).toMatchObject({ status: 500, attempts: 3, retryable: true });
    expect(fake.service.read('dags', blob.name)).toBeUndefined();
  });

  it('fails at once with ASTRO_UPLOAD_REJECTED on a redirect, which it does not follow', async () => {
    for (const [route, size] of [
      ['blob.putBlob', 10 * KIB],
      ['blob.putBlock', 2 * MIB],
    ] as const) {
      proxy.faults.clear();
      proxy.resetStats();
      proxy.faults.add({ route, nth: 1, times: Infinity, action: { kind: 'status', status: 307, headers: { location: 'http://127.0.0.1:9/elsewhere' } } });
      const blob = newBlob();
      const log = new EventLog();
      const error = await uploadBlockBlob(blob.url, payload(size, 14), opts(log)).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_UPLOAD_REJECTED')).toBe(true);
      expect(error).toMatchObject({ status: 307, retryable: false });
      expect((error as Error).message).toMatch(/answered 307\b.*a redirect, which an upload does not follow/);
      expect((error as Error).message).not.toMatch(/Gave up/);
      expect(log.of('upload:retry')).toEqual([]);
      expect(fake.service.read('dags', blob.name)).toBeUndefined();
    }
  });

  it('maps an expired SAS and a SAS without write permission to typed errors', async () => {
    const expired = newBlob('cw', -1000);
    const e1 = await uploadBlockBlob(expired.url, payload(10 * KIB), opts()).catch((e: unknown) => e);
    expect(isAstroError(e1, 'ASTRO_UPLOAD_SAS_EXPIRED')).toBe(true);
    expect(e1).toMatchObject({ status: 403, serviceCode: 'AuthenticationFailed' });
    // Long expired: refused before any request.
    proxy.resetStats();
    const old = newBlob('cw', -3_600_000);
    const e2 = await uploadBlockBlob(old.url, payload(10 * KIB), opts()).catch((e: unknown) => e);
    expect(isAstroError(e2, 'ASTRO_UPLOAD_SAS_EXPIRED')).toBe(true);
    expect(proxy.stats.requests).toBe(0);
    const readOnly = newBlob('r');
    const e3 = await uploadBlockBlob(readOnly.url, payload(2 * MIB), opts()).catch((e: unknown) => e);
    expect(isAstroError(e3, 'ASTRO_UPLOAD_REJECTED')).toBe(true);
    expect(e3).toMatchObject({ status: 403, serviceCode: 'AuthorizationPermissionMismatch' });
  });

  it('rejects invalid URLs and unreadable sources with typed errors', async () => {
    const e1 = await uploadBlockBlob('not a url', payload(1), opts()).catch((e: unknown) => e);
    expect(isAstroError(e1, 'ASTRO_UPLOAD_INVALID_URL')).toBe(true);
    const e2 = await uploadBlockBlob(newBlob().url, '/nonexistent/bundle.tgz', opts()).catch((e: unknown) => e);
    expect(isAstroError(e2, 'ASTRO_UPLOAD_SOURCE_UNREADABLE')).toBe(true);
  });

  it('aborts promptly with AstroAbortError, even mid-request', async () => {
    const blob = newBlob();
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, times: Infinity, action: { kind: 'stall' } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user cancelled')), 300);
    const started = Date.now();
    const error = await uploadBlockBlob(blob.url, payload(2 * MIB), opts(undefined, { signal: controller.signal })).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(isAstroError(error, 'ASTRO_ABORTED')).toBe(true);
    expect(fake.service.read('dags', blob.name)).toBeUndefined();
    // And during a backoff sleep.
    proxy.faults.clear();
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, action: { kind: 'status', status: 503, headers: { 'retry-after': '30' } } });
    const c2 = new AbortController();
    setTimeout(() => c2.abort(), 300);
    const t2 = Date.now();
    const e2 = await uploadBlockBlob(blob.url, payload(2 * MIB), opts(undefined, { signal: c2.signal })).catch((e: unknown) => e);
    expect(Date.now() - t2).toBeLessThan(1500);
    expect(isAstroError(e2, 'ASTRO_ABORTED')).toBe(true);
  });

  it('never lets the SAS signature into events or errors', async () => {
    const blob = newBlob('r');
    const log = new EventLog();
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, action: { kind: 'reset' } });
    const error = await uploadBlockBlob(blob.url, payload(2 * MIB), opts(log)).catch((e: unknown) => e);
    expect(isAstroError(error)).toBe(true);
    const ok = newBlob();
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, action: { kind: 'status', status: 408 } });
    await uploadBlockBlob(ok.url, payload(2 * MIB), opts(log));
    const dump = (e: unknown): string => {
      if (!(e instanceof Error)) return JSON.stringify(e);
      return `${e.message}\n${e.stack}\n${JSON.stringify(e)}\n${dump((e as { cause?: unknown }).cause)}`;
    };
    const text = `${JSON.stringify(log.events)}\n${dump(error)}`;
    for (const sig of [blob.sig, ok.sig]) {
      expect(text).not.toContain(sig);
      expect(text).not.toContain(encodeURIComponent(sig));
    }
    expect(log.of('upload:start')[0]?.blobUrl).not.toContain('?');
  });

  it('resumes from the journal with a write-only SAS, sending only missing blocks', async () => {
    const blob = newBlob('cw');
    const data = payload(4 * MIB + 3, 9);
    proxy.faults.add({ route: 'blob.putBlock', nth: 4, times: Infinity, action: { kind: 'status', status: 500 } });
    const first = await uploadBlockBlob(blob.url, data, opts(undefined, { retry: { maxRetries: 1 }, concurrency: 1 })).catch((e: unknown) => e);
    expect(isAstroError(first, 'ASTRO_UPLOAD_FAILED')).toBe(true);
    expect(await readdir(journal.dir)).toHaveLength(1);
    const stagedBytes = proxy.stats.byRoute['blob.putBlock']!.bytesUp;
    proxy.faults.clear();
    proxy.resetStats();
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log));
    const resumed = log.of('upload:resumed')[0];
    expect(resumed).toMatchObject({ via: 'journal', blocksSkipped: 3 });
    expect(result.resumed).toBe(true);
    expect(proxy.stats.byRoute['blob.getBlockList']).toBeUndefined();
    // Only the bytes not acknowledged before went out again.
    expect(proxy.stats.byRoute['blob.putBlock']!.bytesUp).toBe(data.length - resumed!.bytesSkipped);
    expect(resumed!.bytesSkipped).toBeGreaterThan(0);
    expect(resumed!.bytesSkipped).toBeLessThan(stagedBytes);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
    expect(await readdir(journal.dir)).toHaveLength(0);
  });

  it('resumes with Get Block List when the SAS may read (no journal)', async () => {
    const blob = newBlob('rcw');
    const data = payload(4 * MIB, 10);
    proxy.faults.add({ route: 'blob.putBlock', nth: 5, times: Infinity, action: { kind: 'status', status: 500 } });
    const first = await uploadBlockBlob(blob.url, data, opts(undefined, { journalDir: false, retry: { maxRetries: 0 }, concurrency: 1 })).catch((e: unknown) => e);
    expect(isAstroError(first, 'ASTRO_UPLOAD_FAILED')).toBe(true);
    proxy.faults.clear();
    proxy.resetStats();
    const log = new EventLog();
    await uploadBlockBlob(blob.url, data, opts(log, { journalDir: false }));
    const resumed = log.of('upload:resumed')[0];
    expect(resumed).toMatchObject({ via: 'block-list', blocksSkipped: 4 });
    expect(proxy.stats.byRoute['blob.getBlockList']?.requests).toBe(1);
    expect(proxy.stats.byRoute['blob.putBlock']!.bytesUp).toBe(data.length - resumed!.bytesSkipped);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('does not reuse journaled blocks whose source bytes changed', async () => {
    const blob = newBlob('cw');
    const data = payload(3 * MIB, 11);
    proxy.faults.add({ route: 'blob.putBlockList', times: Infinity, action: { kind: 'status', status: 500 } });
    await uploadBlockBlob(blob.url, data, opts(undefined, { retry: { maxRetries: 0 } })).catch(() => undefined);
    proxy.faults.clear();
    const changed = Buffer.from(data);
    changed[10] = changed[10]! ^ 0xff;
    const log = new EventLog();
    await uploadBlockBlob(blob.url, changed, opts(log));
    const skipped = log.of('upload:resumed')[0]?.blocksSkipped ?? 0;
    expect(skipped).toBeGreaterThan(0);
    expect(sameBytes(fake.service.read('dags', blob.name), changed)).toBe(true);
  });

  it('sends everything again when journaled blocks are gone from the service', async () => {
    const blob = newBlob('cw');
    const data = payload(2 * MIB, 12);
    proxy.faults.add({ route: 'blob.putBlockList', times: Infinity, action: { kind: 'status', status: 500 } });
    await uploadBlockBlob(blob.url, data, opts(undefined, { retry: { maxRetries: 0 } })).catch(() => undefined);
    proxy.faults.clear();
    // Another writer replaces the blob: the staged blocks are discarded.
    const other = await request(fake.service.sasUrl(fake.url, 'dags', blob.name), {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob', 'content-length': '3' },
      body: 'abc',
    });
    expect(other.statusCode).toBe(201);
    await other.body.dump();
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log));
    expect(log.of('upload:warning').map((w) => w.code)).toContain('resumed-blocks-lost');
    expect(result.resumed).toBe(false);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('does not reuse blocks of an earlier run that leave no room for the rest within 50,000', async () => {
    // A journal of 50,001 one-byte blocks, as a run that did not count the blocks it resumed from
    // could leave. Committed, they were refused as too long a list, which read as blocks lost.
    const blob = newBlob('cw');
    const data = payload(50_001, 13);
    const { journal: earlier } = await UploadJournal.open(journal.dir, parseBlobSas(blob.url).displayUrl, data.length);
    for (let at = 0; at < data.length; at++) {
      earlier.record(encodeBlockId({ offset: at, length: 1, digest: blockDigest(data.subarray(at, at + 1), 'md5'), algorithm: 'md5' }));
    }
    await earlier.release();
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log, { singleShotMaxBytes: 1024 }));
    expect(log.of('upload:warning').map((w) => w.code)).toEqual(['resumed-blocks-dropped']);
    expect(log.of('upload:resumed')).toEqual([]);
    expect(result).toMatchObject({ resumed: false, restages: 0, blocks: 1 });
    expect(proxy.stats.byRoute['blob.putBlockList']?.requests).toBe(1);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('clears uncommitted blocks another client left with a different ID width', async () => {
    const blob = newBlob('cw');
    const foreign = await request(`${fake.service.sasUrl(fake.url, 'dags', blob.name)}&comp=block&blockid=${encodeURIComponent(Buffer.from('short').toString('base64'))}`, {
      method: 'PUT',
      headers: { 'content-length': '4' },
      body: 'junk',
    });
    expect(foreign.statusCode).toBe(201);
    await foreign.body.dump();
    const data = payload(2 * MIB, 13);
    const log = new EventLog();
    await uploadBlockBlob(blob.url, data, opts(log));
    expect(log.of('upload:warning').map((w) => w.code)).toContain('stale-blocks-cleared');
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('refuses to commit a file that changed during the upload', async () => {
    const blob = newBlob();
    const { dir, cleanup } = await tempDir('upload-src-');
    try {
      const file = join(dir, 'bundle.tar.gz');
      await writeFile(file, payload(2 * MIB, 14));
      let touched = false;
      const error = await uploadBlockBlob(blob.url, file, {
        ...opts(),
        onEvent: (e) => {
          if (e.type === 'upload:progress' && !touched) {
            touched = true;
            appendFileSync(file, 'more');
          }
        },
      }).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_UPLOAD_SOURCE_CHANGED')).toBe(true);
      expect(fake.service.read('dags', blob.name)).toBeUndefined();
      expect(proxy.stats.byRoute['blob.putBlockList']).toBeUndefined();
    } finally {
      await cleanup();
    }
  });

  it('refuses to commit a file cut short during the upload (found while its blocks are read)', async () => {
    const blob = newBlob();
    const { dir, cleanup } = await tempDir('upload-src-');
    try {
      const file = join(dir, 'bundle.tar.gz');
      await writeFile(file, payload(8 * MIB, 16));
      let cut = false;
      const error = await uploadBlockBlob(blob.url, file, {
        ...opts(undefined, { concurrency: 1 }),
        onEvent: (e) => {
          if (e.type === 'upload:progress' && !cut) {
            cut = true;
            truncateSync(file, 3 * MIB);
          }
        },
      }).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_UPLOAD_SOURCE_CHANGED'), String(error)).toBe(true);
      expect(fake.service.read('dags', blob.name)).toBeUndefined();
      expect(proxy.stats.byRoute['blob.putBlockList']).toBeUndefined();
    } finally {
      await cleanup();
    }
  });

  it('uploads an empty payload with one Put Blob', async () => {
    const blob = newBlob();
    const result = await uploadBlockBlob(blob.url, new Uint8Array(0), opts());
    expect(result).toMatchObject({ mode: 'single', bytes: 0, blocks: 1 });
    expect(fake.service.read('dags', blob.name)?.length).toBe(0);
  });

  it('shrinks blocks when a hop refuses them as too large (413)', async () => {
    const small = await startFakeBlobServer({ maxBlockBytes: 300 * KIB });
    try {
      const url = small.service.sasUrl(small.url, 'dags', 'big-blocks.bin');
      const data = payload(2 * MIB, 15);
      const log = new EventLog();
      await uploadBlockBlob(url, data, opts(log));
      expect(log.of('upload:block-size').some((e) => e.reason === 'http-413' && e.toBytes <= 300 * KIB)).toBe(true);
      expect(sameBytes(small.service.read('dags', 'big-blocks.bin'), data)).toBe(true);
    } finally {
      await small.close();
    }
  });

  it('rejects nonsensical options as configuration errors', async () => {
    const error = await uploadBlockBlob(newBlob().url, payload(10), opts(undefined, { blockSizeBytes: -1 })).catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
  });

  it('refuses a per-try timeout a timer cannot keep, before any request, and a rule that answers one when asked', async () => {
    // Node runs a timer of Infinity, 2^31 ms or more, 0 or less as one of 1 ms: every try timed out at once.
    for (const tryTimeoutMs of [Number.POSITIVE_INFINITY, 2 ** 31, 0, -5, Number.NaN, '5000' as unknown as number]) {
      const error = await uploadBlockBlob(newBlob().url, payload(2 * MIB), opts(undefined, { tryTimeoutMs })).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
      expect((error as Error).message).toContain('tryTimeoutMs of uploadBlockBlob must be a number of milliseconds more than 0 and at most 2147483647');
    }
    expect(proxy.stats.requests).toBe(0);
    for (const answer of [Number.POSITIVE_INFINITY, 2 ** 31, 0]) {
      const blob = newBlob();
      const log = new EventLog();
      const error = await uploadBlockBlob(blob.url, payload(2 * MIB), opts(log, { tryTimeoutMs: ({ phase }) => (phase === 'commit' ? answer : 30_000) })).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
      expect((error as Error).message).toMatch(new RegExp(`tryTimeoutMs of uploadBlockBlob must return a number of milliseconds .* \\(got ${answer} for commit of \\d+ bytes\\)`));
      expect(log.of('upload:retry')).toEqual([]);
      expect(fake.service.read('dags', blob.name)).toBeUndefined();
    }
    // The longest a timer keeps is fine.
    const blob = newBlob();
    const data = payload(2 * MIB, 7);
    await uploadBlockBlob(blob.url, data, opts(undefined, { tryTimeoutMs: 2 ** 31 - 1 }));
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });
});
