/**
 * Every flow and module function, run in a process of its own, leaves nothing behind that keeps
 * the process alive: no socket (a daemon export read to its end but never closed kept a CI job
 * hanging until its timeout), timer or worker. The child returns without `process.exit`; it must
 * end by itself within a few seconds of printing its result.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNTIME_VERSION_LABEL } from '../src/image/index.js';
import { createFakeAstro, type FakeAstro } from '../src/testing/index.js';
import { buildScratchImage, getTestDocker, removeImages, uniqueName } from './helpers/docker.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from './image/fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = resolve(here, 'fixtures/exit-child.ts');
/** Longest a child may live after printing its result: idle keep-alive sockets close after 4 s. */
const EXIT_WITHIN_MS = 8_000;

let dir: string;
let registry: TestRegistry;
let astro: FakeAstro;
let daemonImage: string;
let archive: string;

/** Run the child; resolve with its output and how long it lived after printing its result. */
function runChild(config: Record<string, unknown>): Promise<{ output: string; code: number | null; lingeredMs: number | undefined }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], {
      env: { ...process.env, DOCKER_HOST: process.env.DOCKER_HOST },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let printedAt: number | undefined;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (printedAt === undefined && /^(done|failed) /m.test(output)) printedAt = Date.now();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const killer = setInterval(() => {
      if (printedAt !== undefined && Date.now() - printedAt > EXIT_WITHIN_MS) child.kill('SIGKILL');
    }, 250);
    const hardStop = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(killer);
      clearTimeout(hardStop);
      resolvePromise({ output, code, lingeredMs: printedAt === undefined ? undefined : Date.now() - printedAt });
    });
  });
}

async function expectExits(config: Record<string, unknown>): Promise<void> {
  const { output, code, lingeredMs } = await runChild(config);
  expect(output, output).toMatch(/^done /m);
  expect(code, `the process did not end by itself (killed ${lingeredMs} ms after its result)\n${output}`).toBe(0);
  expect(lingeredMs).toBeLessThan(EXIT_WITHIN_MS);
}

function dagsDir(): string {
  const d = mkdtempSync(join(dir, 'dags-'));
  writeFileSync(join(d, 'dag.py'), 'from airflow import DAG\n');
  return d;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'astro-exits-'));
  await getTestDocker();
  registry = await startRegistry('none');
  astro = await createFakeAstro({ imageRegistry: registry.host, rolloutDelayMs: 50 });
  daemonImage = `astro-test/${uniqueName('exit')}:src`;
  await buildScratchImage({
    tag: daemonImage,
    busybox: true,
    layers: [{ 'etc/marker.txt': 'exit\n' }, { 'data/blob.bin': noise(20_000_000) }],
    labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' },
  });
  archive = join(dir, 'image.tar');
  await writeLegacyArchive(archive, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers: [{ 'data.bin': noise(300_000) }] }), 'test/exit:1');
}, 180_000);

afterAll(async () => {
  await astro?.close();
  await registry?.stop();
  await removeImages(daemonImage);
  rmSync(dir, { recursive: true, force: true });
});

describe('processes end by themselves', () => {
  const api = () => ({ baseUrl: astro.baseUrl, token: astro.token });
  const deployment = (init: Record<string, unknown> = {}) => astro.addDeployment({ runtimeVersion: '3.1-2', ...init }).id;

  it('createBundle', async () => {
    await expectExits({ flow: 'createBundle', dagsDir: dagsDir() });
  }, 60_000);

  it('uploadBlockBlob', async () => {
    const file = join(dir, 'payload.bin');
    writeFileSync(file, noise(6 * 1024 * 1024));
    const blobUrl = astro.blob.sasUrl(astro.origin, 'exits', `${uniqueName('blob')}.tar.gz`);
    await expectExits({ flow: 'uploadBlockBlob', blobUrl, file });
  }, 60_000);

  it('pushImage from the Docker daemon', async () => {
    await expectExits({ flow: 'pushImage', image: daemonImage, target: { repository: `${registry.host}/exit/daemon`, tag: 'v1' } });
  }, 90_000);

  it('pushImage from an archive', async () => {
    await expectExits({ flow: 'pushImage', image: archive, target: { repository: `${registry.host}/exit/archive`, tag: 'v1' } });
  }, 60_000);

  it('setDagDeploy', async () => {
    await expectExits({ flow: 'setDagDeploy', ...api(), deploymentId: deployment() });
  }, 60_000);

  it('waitForRollout', async () => {
    await expectExits({ flow: 'waitForRollout', ...api(), deploymentId: deployment() });
  }, 60_000);

  it('deployDags', async () => {
    await expectExits({ flow: 'deployDags', ...api(), deploymentId: deployment(), dagsDir: dagsDir() });
  }, 60_000);

  it('deployImage from the Docker daemon', async () => {
    await expectExits({ flow: 'deployImage', ...api(), deploymentId: deployment({ isDagDeployEnabled: false }), image: daemonImage });
  }, 90_000);
});
