/**
 * DAG deploy overhead benchmark: how long `deployDags` spends beyond bundling and transfer, on a
 * 1,000-file DAG folder, against the embedded fake Astro over real HTTP on 127.0.0.1.
 *
 *   node --import tsx bench/deploy-dags.ts
 *   BENCH_DAG_FILES=5000 BENCH_REPS=9 node --import tsx bench/deploy-dags.ts
 *
 * The overhead is the flow's own time: reading the deployment, creating and finalizing the deploy,
 * validating answers, events and bookkeeping. It is the whole call minus the bundle phase (from
 * `deploy:checked` to `bundle:complete`) minus the upload phase (`upload:start` to
 * `upload:committed`). The floor beside it is the same four API calls sent by hand with undici
 * (GET deployment, POST deploy, PUT blob, POST finalize), without any of the SDK's checks, so the
 * difference is what the SDK adds over a bare client. Goal (issue 14): overhead ≤ 200 ms.
 * The first deploy of the process (JIT, first connections) is shown on its own row and left out
 * of the medians. Rollout waiting is left out (`wait: false`): the fake's rollout delay is a setting, not work.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { AstroClient, type DeployDagsEvent } from '../src/index.js';
import { createFakeAstro } from '../src/testing/index.js';

const FILES = Number(process.env.BENCH_DAG_FILES ?? 1000);
const REPS = Number(process.env.BENCH_REPS ?? 7);
const GOAL_MS = 200;
const DEPLOYMENT_ID = 'clbenchdeployment00000001';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A DAG folder of `count` small Python files in 20 folders, with a `.airflowignore`. */
async function makeDags(count: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-dags-'));
  await writeFile(join(dir, '.airflowignore'), 'scratch/\n');
  for (let folder = 0; folder < 20; folder++) await mkdir(join(dir, `team_${folder}`), { recursive: true });
  for (let i = 0; i < count; i++) {
    const body = `from airflow import DAG\n# ${randomBytes(1200).toString('base64')}\ndag = DAG("dag_${i}")\n`;
    await writeFile(join(dir, `team_${i % 20}`, `dag_${i}.py`), body);
  }
  return dir;
}

interface Phases {
  totalMs: number;
  bundleMs: number;
  uploadMs: number;
  overheadMs: number;
}

async function sdkDeploy(client: AstroClient, dagsDir: string): Promise<Phases> {
  const at = new Map<string, number>();
  const started = performance.now();
  await client.deployDags({
    deploymentId: DEPLOYMENT_ID,
    dagsDir,
    onEvent: (event: DeployDagsEvent) => {
      if (!at.has(event.type)) at.set(event.type, performance.now());
    },
  });
  const totalMs = performance.now() - started;
  const bundleMs = at.get('bundle:complete')! - at.get('deploy:checked')!;
  const uploadMs = at.get('upload:committed')! - at.get('upload:start')!;
  return { totalMs, bundleMs, uploadMs, overheadMs: totalMs - bundleMs - uploadMs };
}

/** The same calls by hand, with the bundle the SDK made: the floor a bare HTTP client pays, in ms, the Put Blob's own time left out. */
async function bareDeploy(baseUrl: string, organizationId: string, token: string, tarball: Buffer): Promise<number> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const started = performance.now();
  const deployment = await request(`${baseUrl}/organizations/${organizationId}/deployments/${DEPLOYMENT_ID}`, { headers });
  await deployment.body.json();
  const created = await request(`${baseUrl}/organizations/${organizationId}/deployments/${DEPLOYMENT_ID}/deploys`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ type: 'DAG_ONLY', description: 'bench' }),
  });
  const deploy = (await created.body.json()) as { id: string; dagsUploadUrl: string };
  const putStarted = performance.now();
  const put = await request(deploy.dagsUploadUrl, {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob', 'content-length': String(tarball.length) },
    body: tarball,
  });
  await put.body.dump();
  const putMs = performance.now() - putStarted;
  if (put.statusCode !== 201) throw new Error(`bare Put Blob answered ${put.statusCode}`);
  const versionId = put.headers['x-ms-version-id'];
  const finalized = await request(`${baseUrl}/organizations/${organizationId}/deployments/${DEPLOYMENT_ID}/deploys/${deploy.id}/finalize`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ dagTarballVersion: versionId }),
  });
  await finalized.body.dump();
  if (finalized.statusCode !== 200) throw new Error(`bare finalize answered ${finalized.statusCode}`);
  return performance.now() - started - putMs;
}

async function main(): Promise<void> {
  const dagsDir = await makeDags(FILES);
  const astro = await createFakeAstro({ deployments: [{ id: DEPLOYMENT_ID, name: 'bench', runtimeVersion: '3.1-2' }] });
  const client = new AstroClient({ token: astro.token, baseUrl: astro.baseUrl });
  try {
    const sdk: Phases[] = [];
    const bare: number[] = [];
    let tarball: Buffer | undefined;
    // One warm-up of each: module loading, JIT and the first connection are not per-deploy costs.
    const first = await sdkDeploy(client, dagsDir);
    for (let rep = 0; rep < REPS; rep++) {
      sdk.push(await sdkDeploy(client, dagsDir));
      if (!tarball) {
        const { createBundle } = await import('../src/bundle/index.js');
        const made = await createBundle(dagsDir);
        tarball = await readFile(made.path!);
        await made.cleanup();
        await bareDeploy(astro.baseUrl, astro.organizationId, astro.token, tarball);
      }
      bare.push(await bareDeploy(astro.baseUrl, astro.organizationId, astro.token, tarball));
    }
    const m = (pick: (p: Phases) => number) => median(sdk.map(pick)).toFixed(0);
    const overhead = median(sdk.map((p) => p.overheadMs));
    const floor = median(bare);
    console.log(`\nDAG deploy, ${FILES} files, median of ${REPS} (load ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')})\n`);
    console.log('| row | ours (ms) | peer | peer (ms) | goal |');
    console.log('|---|---|---|---|---|');
    console.log(`| whole deployDags (wait: false) | ${m((p) => p.totalMs)} | | | |`);
    console.log(`| bundling | ${m((p) => p.bundleMs)} | | | |`);
    console.log(`| upload | ${m((p) => p.uploadMs)} | | | |`);
    console.log(`| first deploy of the process: overhead beyond bundling and transfer | ${first.overheadMs.toFixed(0)} | | | ≤ ${GOAL_MS} ms: ${first.overheadMs <= GOAL_MS ? 'met' : 'NOT met'} |`);
    console.log(`| SDK overhead beyond bundling and transfer | ${overhead.toFixed(0)} | bare undici, the same calls, transfer left out | ${floor.toFixed(0)} | ≤ ${GOAL_MS} ms: ${overhead <= GOAL_MS ? 'met' : 'NOT met'} |`);
  } finally {
    await astro.close();
    await rm(dagsDir, { recursive: true, force: true });
  }
}

await main();
