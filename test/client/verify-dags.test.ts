/**
 * wait.verifyDags: once the version runs, the deployment's own Airflow REST API (served by the
 * fake on 127.0.0.1 at the deployment's webServerAirflowApiUrl) is asked for import errors.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DagVerificationError, type DeployDagsEvent, type DeployDagsResult } from '../../src/index.js';
import { airflowApiBase, shippedFileOf } from '../../src/client/verify-dags.js';
import { startFake } from '../helpers/fake.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'verify-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'etl'));
  writeFileSync(join(dir, 'etl', 'load.py'), 'from airflow import DAG\n');
  writeFileSync(join(dir, 'report.py'), 'from airflow import DAG\n');
  return dir;
}

const upload = { journalDir: false as const };
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

describe('wait.verifyDags', () => {
  for (const [airflow, runtimeVersion, version, filename] of [
    ['Airflow 3', '3.1-2', 'v2', 'etl/load.py'],
    ['Airflow 2', '12.7.1', 'v1', '/usr/local/airflow/dags/etl/load.py'],
  ] as const) {
    it(`${airflow}: reports the import errors of the shipped files from /api/${version}/importErrors`, async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', runtimeVersion }], rolloutDelayMs: 30 });
      astro.setImportErrors('cldep1', [
        { filename: 'etl/load.py', stackTrace: 'Traceback ...\nModuleNotFoundError: No module named pandas' },
        { filename: 'legacy/old.py', stackTrace: 'SyntaxError' },
      ]);
      const events: DeployDagsEvent[] = [];
      const result = (await client.deployDags({
        deploymentId: 'cldep1',
        dagsDir: makeDags(),
        upload,
        wait: { pollIntervalMs: 20, verifyDags: true },
        onEvent: (e) => events.push(e),
      })) as DeployDagsResult;
      const v = result.rollout!.verification!;
      expect(v.checked).toBe(true);
      expect(v.apiUrl).toBe(`${astro.origin}/airflow/${astro.deployment('cldep1').namespace}/api/${version}`);
      expect(v.importErrors).toEqual([{ file: 'etl/load.py', filename, stackTrace: expect.stringContaining('pandas'), timestamp: expect.any(String) }]);
      expect(v.otherImportErrors.map((e) => e.filename)).toEqual([version === 'v1' ? '/usr/local/airflow/dags/legacy/old.py' : 'legacy/old.py']);
      // Asked once the version runs, with the API token.
      const [req] = astro.requestsFor('airflow.importErrors');
      expect(req!.path).toMatch(new RegExp(`/api/${version}/importErrors$`));
      const types = events.map((e) => e.type);
      expect(types.indexOf('rollout:dags-verified')).toBeGreaterThan(types.indexOf('rollout:complete'));
    });
  }

  it('no import errors: checked, empty', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    const result = (await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, wait: { pollIntervalMs: 20, verifyDags: true } })) as DeployDagsResult;
    expect(result.rollout!.verification).toEqual(expect.objectContaining({ checked: true, importErrors: [], otherImportErrors: [] }));
  });

  it('failOnImportErrors: a typed error naming the files; the deploy is live', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    astro.setImportErrors('cldep1', [{ filename: 'report.py', stackTrace: 'NameError: name "x" is not defined' }]);
    const err = await client
      .deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, wait: { pollIntervalMs: 20, verifyDags: { failOnImportErrors: true } } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(DagVerificationError);
    expect(err.code).toBe('ASTRO_DAGS_IMPORT_ERRORS');
    expect(err.importErrors.map((e: { file: string }) => e.file)).toEqual(['report.py']);
    expect(err.message).toMatch(/report\.py/);
    expect(err.deployId).toBe(astro.deploys('cldep1')[0]!.id);
    expect(err.deployFinalized).toBe(true);
    expect(astro.deploys('cldep1')[0]!.status).toBe('DEPLOYED');
  });

  it('the GETs go through the kernel retry: a 503 and a reset are retried', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    astro.setImportErrors('cldep1', [{ filename: 'report.py', stackTrace: 'boom' }]);
    astro.fail({ route: 'airflow.importErrors', action: { kind: 'status', status: 503 } });
    astro.fail({ route: 'airflow.importErrors', action: { kind: 'reset' } });
    const result = (await client.deployDags({
      deploymentId: 'cldep1',
      dagsDir: makeDags(),
      upload,
      request: { retry: fast },
      wait: { pollIntervalMs: 20, verifyDags: true },
    })) as DeployDagsResult;
    expect(result.rollout!.verification!.importErrors).toHaveLength(1);
    expect(astro.requestsFor('airflow.importErrors').length).toBeGreaterThanOrEqual(3);
  });

  it('an Airflow API that refuses the token: reported as not checked, or ASTRO_DAGS_VERIFY_UNAVAILABLE with failOnImportErrors', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    astro.fail({ route: 'airflow.importErrors', times: 2, action: { kind: 'status', status: 403, body: { title: 'Forbidden', status: 403 } } });
    const result = (await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, wait: { pollIntervalMs: 20, verifyDags: true } })) as DeployDagsResult;
    expect(result.rollout!.verification).toMatchObject({ checked: false, error: { code: 'ASTRO_API_FORBIDDEN' } });
    const err = await client
      .deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, wait: { pollIntervalMs: 20, verifyDags: { failOnImportErrors: true } } })
      .catch((e) => e);
    expect(err.code).toBe('ASTRO_DAGS_VERIFY_UNAVAILABLE');
    expect(err.cause.code).toBe('ASTRO_API_FORBIDDEN');
  });

  it('waitForRollout verifies too, reporting every file when it does not know what was shipped', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    const deployed = (await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload })) as DeployDagsResult;
    astro.setImportErrors('cldep1', [{ filename: 'anything.py', stackTrace: 'x' }]);
    const rollout = await client.waitForRollout({ deploymentId: 'cldep1', deployId: deployed.deployId, pollIntervalMs: 20, verifyDags: true });
    expect(rollout.verification!.importErrors.map((e) => e.file)).toEqual(['anything.py']);
    const narrowed = await client.waitForRollout({ deploymentId: 'cldep1', deployId: deployed.deployId, verifyDags: { files: ['report.py'] } });
    expect(narrowed.verification!.importErrors).toEqual([]);
    expect(narrowed.verification!.otherImportErrors).toHaveLength(1);
  });

  it('reads the Airflow API URL as Astro gives it (no scheme, with or without /api/vN) and maps filenames to shipped files', () => {
    const base = { id: 'd', airflowVersion: '3.1.0' } as Parameters<typeof airflowApiBase>[0];
    expect(airflowApiBase({ ...base, webServerAirflowApiUrl: 'org.astronomer.run/d1234/api/v2' })).toBe('https://org.astronomer.run/d1234/api/v2');
    expect(airflowApiBase({ ...base, webServerAirflowApiUrl: 'org.astronomer.run/d1234/' })).toBe('https://org.astronomer.run/d1234/api/v2');
    expect(airflowApiBase({ ...base, airflowVersion: '2.10.5', webServerAirflowApiUrl: 'org.astronomer.run/d1234' })).toBe('https://org.astronomer.run/d1234/api/v1');
    expect(() => airflowApiBase({ ...base, webServerAirflowApiUrl: 'http://example.com/d/api/v2' })).toThrow(/plain http/);
    expect(() => airflowApiBase({ ...base })).toThrow(/webServerAirflowApiUrl/);
    const files = new Set(['etl/load.py', 'load.py']);
    expect(shippedFileOf('/usr/local/airflow/dags/etl/load.py', files)).toBe('etl/load.py');
    expect(shippedFileOf('etl/load.py', files)).toBe('etl/load.py');
    expect(shippedFileOf('/usr/local/airflow/dags/other.py', files)).toBeUndefined();
    expect(shippedFileOf('/usr/local/airflow/dags/x/y.py', undefined)).toBe('x/y.py');
  });
});
