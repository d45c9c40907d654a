/**
 * `astro-deploy demo`: the main job, a DAG deploy with a wait for the rollout, against the fake
 * Astro of `astro-deploy-sdk/testing` on 127.0.0.1 (no token, no network). The fake answers one
 * API read with a 503, one upload block with a 503 and resets the connection of another, and
 * drops the answer of finalize, so the deploy shows its recoveries; the upload is throttled so its
 * progress can be watched.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { AstroClient } from '../client/client.js';
import { createFakeAstro } from '../testing/fake-astro.js';
import { SDK_VERSION } from '../version.js';
import { clientLogging, dagsOutcome, type CommandContext } from './commands.js';
import type { Outcome } from './output/reporter.js';

const DEPLOYMENT_ID = 'clastrodeploydemo000000001';
const KIB = 1024;

/** The sample dags folder: two DAGs, a helper module, a test that .airflowignore leaves out, some data. */
const SAMPLE: Record<string, string> = {
  '.airflowignore': '# Airflow 3 (glob syntax): tests are not shipped.\ntests/\n',
  'example_etl.py': `from datetime import datetime

from airflow.sdk import dag, task

from include.transform import normalise


@dag(schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False, tags=["demo"])
def example_etl():
    @task
    def extract():
        return [{"id": 1, "amount": "12.50"}, {"id": 2, "amount": "7.25"}]

    @task
    def load(rows):
        print(f"loaded {len(rows)} rows")

    load(normalise(extract()))


example_etl()
`,
  'reports.py': `from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule="0 6 * * 1", start_date=datetime(2026, 1, 1), catchup=False, tags=["demo"])
def weekly_report():
    @task
    def build():
        return "report.csv"

    build()


weekly_report()
`,
  'include/__init__.py': '',
  'include/transform.py': `from airflow.sdk import task


@task
def normalise(rows):
    return [{**row, "amount": float(row["amount"])} for row in rows]
`,
  'tests/test_transform.py': `def test_amounts_are_floats():
    assert float("12.50") == 12.5
`,
};

/** Incompressible sample data, so the upload has some bytes to show. */
const DATA_FILE = 'data/sample.bin';
const DATA_BYTES = 3 * 1024 * KIB;

async function writeSample(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'astro-deploy-demo-'));
  const dir = join(root, 'dags');
  for (const [path, text] of Object.entries(SAMPLE)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  await mkdir(join(dir, 'data'), { recursive: true });
  await writeFile(join(dir, DATA_FILE), randomBytes(DATA_BYTES));
  return { dir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

export async function demo(ctx: CommandContext): Promise<Outcome> {
  const started = performance.now();
  const given = typeof ctx.values['dags-dir'] === 'string' ? resolve(ctx.cwd, ctx.values['dags-dir']) : undefined;
  const sample = given ? undefined : await writeSample();
  const astro = await createFakeAstro({
    deployments: [{ id: DEPLOYMENT_ID, name: 'analytics', runtimeVersion: '3.1-2' }],
    rolloutDelayMs: 1500,
  });
  try {
    ctx.reporter.note(`demo: fake Astro on ${astro.baseUrl}; it will answer a 503, reset a connection and lose the finalize answer`);
    // First matching rule wins: the faults go before the throttle that slows every block.
    astro.fail({ route: 'deployments.get', nth: 1, action: { kind: 'status', status: 503 } });
    astro.fail({ route: 'blob.putBlock', nth: 2, action: { kind: 'status', status: 503, afterBodyBytes: 64 * KIB } });
    astro.fail({ route: 'blob.putBlock', nth: 5, action: { kind: 'reset', afterBodyBytes: 96 * KIB } });
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    astro.fail({ route: 'blob.putBlock', times: Number.POSITIVE_INFINITY, action: { kind: 'throttle', bytesPerSecond: 640 * KIB } });
    ctx.facts.push(['Deployment', `analytics (${DEPLOYMENT_ID})`]);

    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, userAgent: `astro-deploy-cli/${SDK_VERSION}`, ...clientLogging(ctx.reporter) });
    const r = await client.deployDags({
      deploymentId: DEPLOYMENT_ID,
      dagsDir: given ?? sample!.dir,
      description: 'astro-deploy demo',
      wait: { pollIntervalMs: 300, timeoutMs: 60_000 },
      // Small fixed blocks, so a few MiB make a multi-block upload; the defaults adapt to the link.
      upload: { blockSizeBytes: 256 * KIB, minBlockSizeBytes: 64 * KIB, maxBlockSizeBytes: 256 * KIB, singleShotMaxBytes: 64 * KIB, journalDir: false },
      signal: ctx.signal,
      onEvent: (event) => ctx.reporter.event(event),
    });
    const outcome = dagsOutcome('demo', { id: DEPLOYMENT_ID, name: 'analytics' }, r, started);
    const recovered = astro.faults.fired.filter((f) => f.action !== 'throttle').map((f) => `${f.action} on ${f.route}`);
    outcome.facts.splice(outcome.facts.length - 1, 0, ['Faults injected', recovered.join(', ') || 'none'], ['Fake Astro', astro.baseUrl]);
    return outcome;
  } finally {
    await astro.close();
    await sample?.cleanup();
  }
}
