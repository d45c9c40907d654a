/**
 * Two processes upload to one blob at once, as two deploys to one deployment do (astro-cli#1586):
 * each commit discards the blocks the other process had staged, so the other's commit finds them
 * gone (`InvalidBlockList`). Each process must end with its own payload committed (or a typed
 * error), and no commit may ever hold a mix of the two payloads.
 *
 * The race is made reproducible with two throttled links: a "fast" process commits 1 MiB payloads
 * round and round (a commit every ~0.3 s) while a "slow" process stages one 4 MiB payload (~1.3 s
 * per pass), so every pass of the slow one loses its blocks until the fast one is told to stop,
 * which happens once the slow one has staged again twice. Against the fake blob service (which
 * keeps every version, so each commit can be read back) and against Azurite.
 */
import { spawn } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';
import { blobRouteOf, createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { blockDigest, decodeBlockId } from '../../src/upload/block-id.js';
import { isAstroError } from '../../src/core/errors.js';
import { uploadBlockBlob, type UploadBlockBlobOptions } from '../../src/upload/index.js';
import { putBlob } from '../helpers/fake.js';
import { startAzurite, type AzuriteHandle } from '../helpers/azurite.js';
import { KIB, MIB, payload, sameBytes, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = resolve(here, 'fixtures/race-child.ts');

/** One upload's outcome as the child prints it. */
interface Outcome {
  ok: boolean;
  file: string;
  versionId?: string;
  etag?: string;
  bytes?: number;
  restages: number;
  code?: string;
  message?: string;
}

/** Blocks only (no single Put Blob, which is atomic and never races), small, quick backoff. */
const OPTIONS: UploadBlockBlobOptions = {
  blockSizeBytes: 256 * KIB,
  minBlockSizeBytes: 64 * KIB,
  maxBlockSizeBytes: 256 * KIB,
  singleShotMaxBytes: 64 * KIB,
  retry: { initialDelayMs: 150, maxDelayMs: 1000 },
};

interface ChildConfig {
  url: string;
  files: string[];
  options: UploadBlockBlobOptions;
  loop?: boolean;
}

/** A running child: its outcomes once it is done, and the `restage` lines it printed so far. */
function startChild(config: ChildConfig): { ready: Promise<void>; send: (line: string) => void; restages: () => number; done: Promise<Outcome[]>; onRestage: (fn: () => void) => void } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let restages = 0;
  const listeners: Array<() => void> = [];
  const ready = new Promise<void>((resolveReady, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      const text = c.toString();
      output += text;
      if (output.includes('ready\n')) resolveReady();
      const more = text.split('\n').filter((l) => l === 'restage').length;
      if (more) {
        restages += more;
        for (const fn of listeners) fn();
      }
    });
    child.on('error', reject);
  });
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const hardStop = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const done = new Promise<Outcome[]>((resolveDone, reject) =>
    child.on('close', () => {
      clearTimeout(hardStop);
      const lines = output.split('\n').filter((l) => l.startsWith('{'));
      if (lines.length === 0) reject(new Error(`child printed no outcome:\n${output}`));
      else resolveDone(lines.map((l) => JSON.parse(l) as Outcome));
    }),
  );
  return { ready, send: (line) => child.stdin.write(`${line}\n`), restages: () => restages, done, onRestage: (fn) => listeners.push(fn) };
}

/**
 * The race: the "fast" process uploads its payloads round and round, a commit every fraction of a
 * second, while the "slow" one stages its payload (over a second per pass), so that every pass of
 * the slow one loses its blocks. Once it has staged again twice (the SDK used to give up at the
 * second loss), or is done, the fast one is told to stop; the slow one must then get its commit in.
 */
async function race(fast: ChildConfig, slow: ChildConfig): Promise<{ fast: Outcome[]; slow: Outcome[] }> {
  const f = startChild({ ...fast, loop: true });
  const s = startChild(slow);
  await Promise.all([f.ready, s.ready]);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    f.send('stop');
  };
  s.onRestage(() => {
    if (s.restages() >= 2) stop();
  });
  void s.done.finally(stop).catch(() => undefined);
  f.send('go');
  s.send('go');
  return { fast: await f.done, slow: await s.done };
}

/** The payloads of one race: the fast process's four and the slow process's one, as files. */
async function payloads(dir: string, seed: number): Promise<{ fast: string[]; slow: string[]; bytes: Map<string, Buffer> }> {
  const bytes = new Map<string, Buffer>();
  const write = async (name: string, size: number, s: number) => {
    const file = join(dir, name);
    const data = payload(size, s);
    await writeFile(file, data);
    bytes.set(file, data);
    return file;
  };
  const fast = [];
  for (let i = 0; i < 4; i++) fast.push(await write(`fast-${i}.tar.gz`, 1 * MIB, seed + i));
  const slow = [await write('slow.tar.gz', 4 * MIB, seed + 10)];
  return { fast, slow, bytes };
}

/** Every block ID in `ids` names a range of `data` and that range's digest. */
function blocksAllFrom(ids: string[], data: Buffer): boolean {
  return ids.every((id) => {
    const ref = decodeBlockId(id);
    if (!ref) return false;
    const range = data.subarray(ref.offset, ref.offset + ref.length);
    return range.length === ref.length && blockDigest(range, ref.algorithm).equals(ref.digest);
  });
}

/** Checks shared by both services: everyone ends committed, the slow one after losing its blocks twice or more. */
function expectBothCommitted(outcomes: { fast: Outcome[]; slow: Outcome[] }, bytes: Map<string, Buffer>): Outcome[] {
  const { fast, slow } = outcomes;
  const all = [...fast, ...slow];
  expect(slow).toHaveLength(1);
  for (const o of all) expect(o, JSON.stringify(o)).toMatchObject({ ok: true });
  for (const o of all) expect(o.bytes).toBe(bytes.get(o.file)!.length);
  // The slow process lost its staged blocks to the fast one's commits more than once: the SDK
  // used to give up at the second loss (ASTRO_UPLOAD_FAILED "staged blocks vanished").
  expect(slow[0]!.restages).toBeGreaterThanOrEqual(2);
  return all;
}

describe('two processes uploading to one blob at once', () => {
  let fake: FakeBlobServer;
  let azurite: AzuriteHandle;
  const proxies: FaultProxy[] = [];
  let versionCounter = 0;
  /** Azurite has no versioning: the proxies stamp commit answers the way a versioned account would. */
  const versionHeaders = (req: IncomingMessage, upRes: IncomingMessage): Record<string, string> => {
    const route = blobRouteOf(req.method ?? 'GET', new URL(req.url ?? '/', 'http://x'));
    if (upRes.statusCode !== 201 || (route !== 'blob.putBlob' && route !== 'blob.putBlockList')) return {};
    return { 'x-ms-version-id': `${new Date().toISOString().slice(0, 19)}.${String(++versionCounter).padStart(7, '0')}Z` };
  };

  beforeAll(async () => {
    fake = await startFakeBlobServer();
    azurite = await startAzurite();
    await azurite.createContainer('dags');
  }, 60_000);
  afterAll(async () => {
    for (const p of proxies) await p.close();
    await fake?.close();
    await azurite?.stop();
  });

  /** A fast (4 MiB/s) and a slow (3 MiB/s) link to `target`. */
  async function links(target: string, injectHeaders?: typeof versionHeaders): Promise<{ fast: FaultProxy; slow: FaultProxy }> {
    const fast = await createFaultProxy({ target, throttleBytesPerSecond: 4 * MIB, ...(injectHeaders ? { injectHeaders } : {}) });
    const slow = await createFaultProxy({ target, throttleBytesPerSecond: 3 * MIB, ...(injectHeaders ? { injectHeaders } : {}) });
    proxies.push(fast, slow);
    return { fast, slow };
  }

  it('fake blob service: each process commits its own payloads, every committed version holds exactly one payload', async () => {
    const work = await tempDir('upload-race-');
    try {
      const { fast, slow, bytes } = await payloads(work.dir, 300);
      const link = await links(fake.url);
      const name = 'race/dags.tar.gz';
      // One journal folder, as two processes on one machine share it (one gets `journal-busy`).
      const options = { ...OPTIONS, journalDir: join(work.dir, 'journal') };
      const outcomes = await race(
        { url: fake.service.sasUrl(link.fast.url, 'dags', name), files: fast, options },
        { url: fake.service.sasUrl(link.slow.url, 'dags', name), files: slow, options },
      );
      const all = expectBothCommitted(outcomes, bytes);
      // Every commit of both processes is a version of the blob holding exactly that process's payload.
      for (const o of all) expect(sameBytes(fake.service.readVersion('dags', name, o.versionId!), bytes.get(o.file)!), o.file).toBe(true);
      const versions = fake.service.versions('dags', name).map((v) => v.versionId);
      expect(versions).toEqual(expect.arrayContaining(all.map((o) => o.versionId)));
      // And no version at all (even one nobody reported) mixes payloads.
      for (const v of versions) {
        const content = fake.service.readVersion('dags', name, v)!;
        expect([...bytes.values()].some((b) => sameBytes(content, b)), v).toBe(true);
      }
    } finally {
      await work.cleanup();
    }
  }, 120_000);

  it('ends with ASTRO_UPLOAD_CONFLICT, nothing of its own committed, when another writer commits before each of its maxRestages + 1 commits', async () => {
    const proxy = await createFaultProxy({ target: fake.url });
    proxies.push(proxy);
    const name = 'race/conflict.tar.gz';
    const other = payload(100 * KIB, 7);
    // Our commit is held back a little; the other writer's Put Blob, sent the moment our last
    // block is acknowledged, lands before it and discards our staged blocks.
    proxy.faults.add({ route: 'blob.putBlockList', times: Infinity, action: { kind: 'delay', ms: 300 } });
    const otherUrl = fake.service.sasUrl(fake.url, 'dags', name);
    const data = payload(1 * MIB, 8);
    const warnings: string[] = [];
    const error = await uploadBlockBlob(fake.service.sasUrl(proxy.url, 'dags', name), data, {
      ...OPTIONS,
      journalDir: false,
      maxRestages: 2,
      retry: { initialDelayMs: 10, maxDelayMs: 20 },
      onEvent: (e) => {
        if (e.type === 'upload:warning') warnings.push(e.code);
        if (e.type === 'upload:progress' && e.bytesAcked === e.totalBytes) void putBlob(otherUrl, other);
      },
    }).catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_UPLOAD_CONFLICT')).toBe(true);
    expect(error).toMatchObject({ serviceCode: 'InvalidBlockList', attempts: 3, retryable: true });
    expect(warnings).toEqual(['blocks-lost-to-other-upload', 'blocks-lost-to-other-upload']);
    expect(proxy.stats.byRoute['blob.putBlockList']?.requests).toBe(3);
    // Every version of the blob is the other writer's: none is ours, none is a mix.
    for (const v of fake.service.versions('dags', name)) expect(sameBytes(fake.service.readVersion('dags', name, v.versionId), other)).toBe(true);
  });

  it('Azurite: each process commits its own payloads, and the blob holds exactly the last one', async () => {
    const work = await tempDir('upload-race-az-');
    try {
      const { fast, slow, bytes } = await payloads(work.dir, 400);
      const link = await links(azurite.origin, versionHeaders);
      const name = 'race-az.tar.gz';
      const options = { ...OPTIONS, journalDir: join(work.dir, 'journal') };
      const outcomes = await race(
        { url: azurite.sasUrl('dags', name, 'cw', link.fast.url), files: fast, options },
        { url: azurite.sasUrl('dags', name, 'cw', link.slow.url), files: slow, options },
      );
      const all = expectBothCommitted(outcomes, bytes);
      // The blob's ETag names the last commit; its content and its committed block list are that
      // payload's alone.
      const props = await azurite.service.getContainerClient('dags').getBlockBlobClient(name).getProperties();
      const last = all.find((o) => o.etag === props.etag);
      expect(last, `no upload reported the blob's ETag ${props.etag}`).toBeDefined();
      const data = bytes.get(last!.file)!;
      expect(sameBytes(await azurite.download('dags', name), data)).toBe(true);
      const { committed } = await azurite.blockList('dags', name);
      expect(committed.length).toBeGreaterThan(1);
      expect(blocksAllFrom(committed, data)).toBe(true);
    } finally {
      await work.cleanup();
    }
  }, 120_000);
});
