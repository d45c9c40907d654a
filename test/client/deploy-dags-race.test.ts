/**
 * Two processes deploy DAGs to one deployment at once (astro-cli#1586): every upload goes to the
 * deployment's single blob, and each commit discards the blocks the other process had staged.
 * Each deploy must end committed with its own bundle and finalized with that bundle's version
 * (or with a typed error), and no version of the blob may mix two bundles.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createFakeAstro } from '../../src/testing/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = resolve(here, 'fixtures/deploy-dags-child.ts');

interface Outcome {
  ok: boolean;
  deployId?: string;
  dagTarballVersion?: string;
  sha256?: string;
  restages?: number;
  code?: string;
  message?: string;
}

/** A dags folder whose bundle is about `bytes` long (an incompressible data file) plus a DAG. */
function dagsFolder(root: string, name: string, bytes: number): string {
  const dir = join(root, name, 'dags');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.py`), `from airflow import DAG  # ${name}\n`);
  writeFileSync(join(dir, 'data.bin'), randomBytes(bytes));
  return dir;
}

function runChild(config: object): { ready: Promise<void>; go: () => void; done: Promise<Outcome[]> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const ready = new Promise<void>((ok, fail) => {
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
      if (output.includes('ready\n')) ok();
    });
    child.on('error', fail);
  });
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const hardStop = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const done = new Promise<Outcome[]>((ok) =>
    child.on('close', () => {
      clearTimeout(hardStop);
      const lines = output.split('\n').filter((l) => l.startsWith('{'));
      ok(lines.length ? lines.map((l) => JSON.parse(l) as Outcome) : [{ ok: false, message: output }]);
    }),
  );
  return { ready, go: () => child.stdin.end('go\n'), done };
}

describe('deployDags from two processes to one deployment at once', () => {
  it('every deploy ends finalized with its own bundle, and no blob version mixes two bundles', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'clrace1', runtimeVersion: '3.1-2' }], rolloutDelayMs: 50 });
    onTestFinished(() => astro.close());
    const root = mkdtempSync(join(tmpdir(), 'deploy-race-'));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    // Slow the block uploads down so that the two processes' staging overlaps.
    astro.fail({ route: 'blob.putBlock', times: Infinity, action: { kind: 'throttle', bytesPerSecond: 2 * 1024 * 1024 } });
    const upload = {
      blockSizeBytes: 256 * 1024,
      minBlockSizeBytes: 64 * 1024,
      maxBlockSizeBytes: 256 * 1024,
      singleShotMaxBytes: 64 * 1024,
      concurrency: 2,
      retry: { initialDelayMs: 150, maxDelayMs: 1000 },
      journalDir: join(root, 'journal'),
    };
    const base = { baseUrl: astro.baseUrl, token: astro.token, deploymentId: 'clrace1', upload };
    const a = runChild({ ...base, dagsDirs: [0, 1, 2].map((i) => dagsFolder(root, `a${i}`, 1_200_000)) });
    const b = runChild({ ...base, dagsDirs: [0, 1, 2].map((i) => dagsFolder(root, `b${i}`, 1_200_000)) });
    await Promise.all([a.ready, b.ready]);
    a.go();
    b.go();
    const outcomes = [...(await a.done), ...(await b.done)];

    for (const o of outcomes) expect(o, JSON.stringify(o)).toMatchObject({ ok: true });
    expect(outcomes).toHaveLength(6);
    const blob = `${astro.organizationId}/clrace1`;
    const records = astro.deploys('clrace1');
    for (const o of outcomes) {
      // The version this deploy was finalized with holds exactly its bundle.
      const content = astro.blob.readVersion('dags', blob, o.dagTarballVersion!);
      expect(content && createHash('sha256').update(content).digest('hex'), o.deployId).toBe(o.sha256);
      const record = records.find((d) => d.id === o.deployId)!;
      expect(record.dagTarballVersion).toBe(o.dagTarballVersion);
    }
    // Six bundles, six versions: no deploy got another's version.
    expect(new Set(outcomes.map((o) => o.dagTarballVersion)).size).toBe(6);
    const bundles = new Set(outcomes.map((o) => o.sha256));
    for (const v of astro.blob.versions('dags', blob)) {
      const content = astro.blob.readVersion('dags', blob, v.versionId)!;
      expect(bundles.has(createHash('sha256').update(content).digest('hex')), v.versionId).toBe(true);
    }
    // The race happened: at least one deploy staged its blocks again.
    expect(outcomes.reduce((n, o) => n + (o.restages ?? 0), 0)).toBeGreaterThan(0);
  }, 180_000);
});
