import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { statusFailure } from '../../src/core/failure.js';
import { MAX_TIMER_MS } from '../../src/core/timer-ms.js';
import { redact } from '../../src/core/redact.js';
import { BlobRequestFailure } from '../../src/upload/blob-http.js';
import { BLOCK_ID_BYTES, blockDigest, decodeBlockId, encodeBlockId } from '../../src/upload/block-id.js';
import { JournalBusyError, UploadJournal } from '../../src/upload/journal.js';
import { LinkController, RESET_PRIOR_BYTES } from '../../src/upload/link-controller.js';
import { tryTimeoutMs } from '../../src/upload/options.js';
import { operationUrl, parseBlobSas } from '../../src/upload/sas.js';
import type { UploadBlockSizeEvent, UploadConcurrencyEvent } from '../../src/upload/types.js';
import { KIB, MIB, tempDir } from './helpers.js';

describe('block ids', () => {
  it('round-trip offset, length and MD5 at a fixed 64-byte width', () => {
    const md5 = createHash('md5').update('x').digest();
    const ids = [0, 1, 2 ** 40].map((offset) => encodeBlockId({ offset, length: 4 * MIB, digest: md5, algorithm: 'md5' }));
    for (const id of ids) {
      expect(id).toHaveLength(88);
      expect(Buffer.from(id, 'base64')).toHaveLength(BLOCK_ID_BYTES);
    }
    expect(decodeBlockId(ids[2]!)).toMatchObject({ offset: 2 ** 40, length: 4 * MIB, algorithm: 'md5' });
    expect(decodeBlockId(ids[0]!)!.digest.equals(md5)).toBe(true);
    const sha = encodeBlockId({ offset: 5, length: 3, digest: blockDigest(Buffer.from('abc'), 'sha256'), algorithm: 'sha256' });
    expect(decodeBlockId(sha)).toMatchObject({ offset: 5, length: 3, algorithm: 'sha256' });
    expect(sha).not.toBe(encodeBlockId({ offset: 5, length: 3, digest: blockDigest(Buffer.from('abc'), 'md5'), algorithm: 'md5' }));
    // Foreign ids (astro-cli's UUID form, short ids) are not ours.
    expect(decodeBlockId(Buffer.alloc(64, 1).toString('base64'))).toBeUndefined();
    expect(decodeBlockId('YWJj')).toBeUndefined();
  });
});

describe('SAS parsing', () => {
  it('registers the signature as a secret and derives limits from sv', () => {
    const sig = 'abcDEF123%2Bsecret%3D';
    const sas = parseBlobSas(`https://acct.blob.core.windows.net/c/deploy/b.tgz?sv=2019-02-02&sp=cw&se=2030-01-01T00:00:00Z&sig=${sig}`);
    expect(sas.displayUrl).toBe('https://acct.blob.core.windows.net/c/deploy/b.tgz');
    expect(sas.permissions).toBe('cw');
    expect(sas.maxBlockBytes).toBe(100 * MIB);
    expect(sas.expiresAt?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(redact(`failed: abcDEF123+secret= and ${sig}`)).not.toMatch(/secret/);
    expect(parseBlobSas('https://h/c/b?sv=2021-08-06&sig=zzzzzzzzzz').maxBlockBytes).toBe(4000 * MIB);
    expect(parseBlobSas('https://h/c/b?sv=2015-04-05&sig=zzzzzzzzzz').maxPutBlobBytes).toBe(64 * MIB);
  });

  it('appends operation parameters without re-encoding the SAS', () => {
    const sas = parseBlobSas('https://h/c/b?sv=2021-08-06&spr=https,http&se=2030-01-01T00:00:00Z&sig=a%2Bb%3D%3D');
    const url = operationUrl(sas, { comp: 'block', blockid: 'ab+/==' });
    expect(url).toBe('https://h/c/b?sv=2021-08-06&spr=https,http&se=2030-01-01T00:00:00Z&sig=a%2Bb%3D%3D&comp=block&blockid=ab%2B%2F%3D%3D');
  });
});

describe('link controller', () => {
  function controller(extra: Partial<ConstructorParameters<typeof LinkController>[0]> = {}) {
    const sizes: UploadBlockSizeEvent[] = [];
    const conc: UploadConcurrencyEvent[] = [];
    const c = new LinkController({
      initialBlockBytes: 4 * MIB,
      minBlockBytes: 256 * KIB,
      maxBlockBytes: 16 * MIB,
      maxConcurrency: 4,
      targetBlockDurationMs: 8000,
      onBlockSize: (e) => sizes.push(e),
      onConcurrency: (e) => conc.push(e),
      ...extra,
    });
    return { c, sizes, conc };
  }
  const failure = (cause: 'http-408' | 'timeout' | 'reset' | 'http-503', elapsedMs = 10_000) =>
    new BlobRequestFailure('x', cause.startsWith('http-') ? statusFailure(Number(cause.slice(5))) : { kind: cause as 'timeout' | 'reset', mayHaveReachedServer: true }, elapsedMs);

  it('grows on a fast link as clean bytes prove it, up to the cap, and adds concurrency', () => {
    const { c, conc } = controller();
    expect(c.concurrency).toBe(2);
    let acked = 0;
    for (let i = 0; i < 200 && c.blockBytes < 16 * MIB; i++) {
      acked += c.blockBytes;
      c.recordSuccess(c.blockBytes, 10);
      // Before any reset, blocks stay within 5 % of (clean bytes + the 32 MiB prior).
      expect(c.blockBytes).toBeLessThanOrEqual(Math.max(4 * MIB, 0.05 * (acked + RESET_PRIOR_BYTES)));
    }
    expect(c.blockBytes).toBe(16 * MIB);
    expect(acked).toBeGreaterThanOrEqual(16 * MIB / 0.05 - RESET_PRIOR_BYTES - 16 * MIB);
    expect(c.concurrency).toBe(4);
    expect(conc.every((e) => e.reason === 'growth')).toBe(true);
  });

  it('halves on 408 and timeout, never below the floor, and sizes blocks to the budget seen', () => {
    const { c, sizes } = controller();
    c.recordFailure(failure('http-408', 10_000));
    expect(c.blockBytes).toBe(2 * MIB);
    expect(c.concurrency).toBe(1);
    for (let i = 0; i < 10; i++) c.recordFailure(failure('timeout', 10_000));
    expect(c.blockBytes).toBe(256 * KIB);
    expect(sizes.every((e) => e.toBytes >= 256 * KIB)).toBe(true);
    // At 1 MiB/s with a 10 s budget seen, blocks grow back only to about half of it (5 MiB), slowly.
    let last = c.blockBytes;
    for (let i = 0; i < 40; i++) {
      c.recordSuccess(c.blockBytes, (c.blockBytes / MIB) * 1000);
      expect(c.blockBytes).toBeLessThanOrEqual(Math.ceil(last * 1.25) + 64 * KIB);
      last = c.blockBytes;
    }
    expect(c.blockBytes).toBeGreaterThan(3 * MIB);
    expect(c.blockBytes).toBeLessThanOrEqual(5 * MIB);
  });

  it('shrinks once for blocks that were in flight together (one reduction per window)', () => {
    const { c } = controller();
    const epoch = c.epoch;
    c.recordFailure(failure('http-408'), epoch);
    c.recordFailure(failure('http-408'), epoch);
    c.recordFailure(failure('http-408'), epoch);
    expect(c.blockBytes).toBe(2 * MIB);
    // A block cut at the new size that fails again does shrink further.
    c.recordFailure(failure('http-408'), c.epoch);
    expect(c.blockBytes).toBe(1 * MIB);
  });

  it('fits blocks to a slow measured rate before any fault', () => {
    const { c, sizes } = controller();
    // 4 MiB took 32 s: 128 KiB/s per stream, so 8 s blocks are 1 MiB.
    c.recordSuccess(4 * MIB, 32_000);
    expect(c.blockBytes).toBe(1 * MIB);
    expect(sizes.at(-1)?.reason).toBe('rate');
  });

  it('re-fits the block size when it adds a stream, as if the uplink were full', () => {
    const { c } = controller({ initialBlockBytes: 1 * MIB });
    // A saturated 256 KiB/s uplink: each stream gets it divided by the streams in flight.
    const link = 256 * KIB;
    for (let i = 0; i < 40; i++) {
      const before = c.concurrency;
      c.recordSuccess(c.blockBytes, (c.blockBytes / (link / c.concurrency)) * 1000);
      // Right after a stream is added, the next block must fit the 8 s target at the new share.
      if (c.concurrency > before) expect(c.blockBytes / (link / c.concurrency)).toBeLessThanOrEqual(8 + 0.1);
    }
    expect(c.concurrency).toBe(4);
    expect(c.blockBytes / (link / c.concurrency)).toBeLessThanOrEqual(8 / 0.9 + 0.1);
  });

  it('leaves the block size alone on server-side faults', () => {
    const { c, sizes } = controller();
    c.recordFailure(failure('http-503'));
    expect(sizes).toHaveLength(0);
    expect(c.blockBytes).toBe(4 * MIB);
  });

  it('keeps the committed block count under 50,000', () => {
    const { c } = controller({ initialBlockBytes: 256 * KIB });
    expect(c.nextBlockBytes(100_000 * MIB, 0)).toBeGreaterThanOrEqual(Math.ceil((100_000 * MIB) / 50_000));
  });
});

describe('per-try timeout', () => {
  it('never asks a timer for more than it keeps, however slow the measured rate', () => {
    expect(tryTimeoutMs(undefined, { phase: 'put-block', bytes: 4000 * MIB, bytesPerSecond: 1 })).toBe(MAX_TIMER_MS);
    expect(tryTimeoutMs(undefined, { phase: 'put-block', bytes: MIB, bytesPerSecond: undefined })).toBe(20_000);
  });
});

describe('journal', () => {
  it('records ids, ignores a torn last line and starts over on a size change', async () => {
    const { dir, cleanup } = await tempDir('journal-');
    try {
      const url = 'https://h/c/b';
      const a = await UploadJournal.open(dir, url, 100);
      expect(a.recorded).toEqual([]);
      a.journal.record('QUJD');
      a.journal.record('REVG');
      expect(await a.journal.flush()).toBeUndefined();
      const text = await readFile(a.journal.path, 'utf8');
      expect(text).not.toContain('sig');
      await import('node:fs/promises').then((fs) => fs.appendFile(a.journal.path, 'R0hJ'));
      await a.journal.release();
      const b = await UploadJournal.open(dir, url, 100);
      expect(b.recorded).toEqual(['QUJD', 'REVG']);
      await b.journal.release();
      const c = await UploadJournal.open(dir, url, 101);
      expect(c.recorded).toEqual([]);
      await c.journal.remove();
    } finally {
      await cleanup();
    }
  });

  it('is held by one upload at a time; a lock of a dead process or a torn lock is taken over', async () => {
    const { dir, cleanup } = await tempDir('journal-lock-');
    try {
      const url = 'https://h/c/locked';
      const first = await UploadJournal.open(dir, url, 100);
      const busy = await UploadJournal.open(dir, url, 100).catch((e: unknown) => e);
      expect(busy).toBeInstanceOf(JournalBusyError);
      expect((busy as JournalBusyError).holder.pid).toBe(process.pid);
      // Another blob is not affected.
      await (await UploadJournal.open(dir, 'https://h/c/other', 100)).journal.remove();
      await first.journal.release();
      const again = await UploadJournal.open(dir, url, 100);
      await again.journal.release();

      const lock = `${UploadJournal.pathFor(dir, url)}.lock`;
      // A process that has exited (its pid is free again) left its lock behind.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      await writeFile(lock, JSON.stringify({ pid: Number(dead.stdout), host: hostname(), since: new Date().toISOString() }));
      await (await UploadJournal.open(dir, url, 100)).journal.release();
      // Another live process on this host holds it: busy.
      const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
      try {
        await writeFile(lock, JSON.stringify({ pid: live.pid, host: hostname(), since: new Date().toISOString(), process: 'other' }));
        expect(await UploadJournal.open(dir, url, 100).catch((e: unknown) => e)).toBeInstanceOf(JournalBusyError);
      } finally {
        live.kill();
      }
      // An earlier process with our pid (containers restart with the same pids) crashed holding it.
      await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString(), process: 'earlier-run' }));
      await (await UploadJournal.open(dir, url, 100)).journal.release();
      await writeFile(lock, '{"pid":');
      const taken = await UploadJournal.open(dir, url, 100);
      expect(JSON.parse(await readFile(lock, 'utf8')).pid).toBe(process.pid);
      await taken.journal.remove();
      await expect(readFile(lock)).rejects.toThrow();
    } finally {
      await cleanup();
    }
  });
});
