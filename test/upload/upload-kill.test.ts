/**
 * A process killed (SIGKILL) in the middle of an upload with a write-only SAS: the re-run resumes
 * from the journal, and what reaches the service twice stays within the blocks that were in
 * flight at the kill. Acknowledged blocks must be journaled as they arrive, not some time later.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';
import { blobRouteOf, createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { uploadBlockBlob, type UploadBlockBlobOptions } from '../../src/upload/index.js';
import { EventLog, KIB, MIB, payload, sameBytes, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = resolve(here, 'fixtures/upload-child.ts');
const SIZE = 64 * MIB;
/** Small blocks, many in flight: a journal that lags behind the acknowledgements shows at once. */
const BLOCK = 256 * KIB;
const CONCURRENCY = 8;

let fake: FakeBlobServer;
let proxy: FaultProxy;
/** Put Block requests the service answered, and their body bytes. */
let answered = { blocks: 0, bytes: 0 };

beforeAll(async () => {
  fake = await startFakeBlobServer();
  proxy = await createFaultProxy({
    target: fake.url,
    injectHeaders: (req: IncomingMessage, upRes: IncomingMessage) => {
      if (blobRouteOf(req.method ?? 'GET', new URL(req.url ?? '/', 'http://x')) === 'blob.putBlock' && upRes.statusCode === 201) {
        answered.blocks += 1;
        answered.bytes += Number(req.headers['content-length'] ?? 0);
      }
      return {};
    },
  });
});
afterAll(async () => {
  await proxy?.close();
  await fake?.close();
});

function putBlockBytes(): number {
  return proxy.stats.byRoute['blob.putBlock']?.bytesUp ?? 0;
}

/** Start the child, SIGKILL it once `killAtBytes` of block bodies reached the service, resolve when it is gone. */
function runAndKill(config: { url: string; file: string; options: UploadBlockBlobOptions }, killAtBytes: number): Promise<{ output: string; killed: boolean }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let killed = false;
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const watch = setInterval(() => {
      if (!killed && putBlockBytes() >= killAtBytes) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, 2);
    const hardStop = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', () => {
      clearInterval(watch);
      clearTimeout(hardStop);
      resolvePromise({ output, killed });
    });
  });
}

describe('uploadBlockBlob killed mid-upload', () => {
  it('re-sends after a SIGKILL at about 50 % no more than the blocks in flight at the kill', async () => {
    const work = await tempDir('upload-kill-');
    try {
      const file = join(work.dir, 'bundle.tar.gz');
      const data = payload(SIZE, 51);
      await writeFile(file, data);
      const journalDir = join(work.dir, 'journal');
      const name = 'killed/bundle.tar.gz';
      const url = fake.service.sasUrl(proxy.url, 'dags', name, { permissions: 'cw' });
      const options: UploadBlockBlobOptions = {
        journalDir,
        blockSizeBytes: BLOCK,
        minBlockSizeBytes: 64 * KIB,
        maxBlockSizeBytes: BLOCK,
        concurrency: CONCURRENCY,
        retry: { initialDelayMs: 20, maxDelayMs: 200 },
      };
      proxy.resetStats();
      answered = { blocks: 0, bytes: 0 };
      const first = await runAndKill({ url, file, options }, SIZE / 2);
      expect(first.killed, first.output).toBe(true);
      // Let the proxy see the connections of the dead process close.
      await new Promise((r) => setTimeout(r, 200));
      const sentBefore = putBlockBytes();
      const acknowledged = answered.bytes;
      expect(sentBefore).toBeGreaterThanOrEqual(SIZE / 2);
      expect(sentBefore).toBeLessThan(SIZE);

      proxy.resetStats();
      const log = new EventLog();
      const result = await uploadBlockBlob(url, file, { ...options, onEvent: log.onEvent });
      const sentAfter = putBlockBytes();
      expect(sameBytes(fake.service.read('dags', name), data)).toBe(true);
      expect(result.resumed).toBe(true);
      const skipped = log.of('upload:resumed')[0]!.bytesSkipped;
      expect(sentAfter).toBe(SIZE - skipped);
      const twice = sentBefore + sentAfter - SIZE;
      const numbers = `${sentBefore} bytes sent before the kill, ${acknowledged} acknowledged by the service, ${skipped} journaled; ${sentAfter} sent by the re-run`;
      // What arrived twice: at most the blocks in flight when the process died (an acknowledged
      // block is journaled before its slot goes to the next block).
      expect(twice, numbers).toBeLessThanOrEqual(CONCURRENCY * BLOCK);
    } finally {
      await work.cleanup();
    }
  });
});
