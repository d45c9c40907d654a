/**
 * Each exit code from a real failure of its class, against the fake Astro over real HTTP (the
 * tests gate's code 4 runs real pytest in a container: image.test.ts), and Ctrl-C: SIGINT in the
 * middle of an upload aborts through the SDK's signal, exits 130, and nothing is finalized.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtBin, cliEnv, dagsProject, fakeAstro, ndjson, runCli, spawnCli, waitForOutput } from './helpers.js';

const DEP = 'clclideployment0000000001';

beforeAll(() => builtBin(), 300_000);

describe('exit codes', () => {
  it('2: usage (an unknown flag, a bad value), before anything is sent', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const unknown = await runCli(['dags', '--deployment-id', DEP, '--bogus'], { env: cliEnv(astro) });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("ASTRO_CLI_USAGE: Unknown option '--bogus'");
    expect(unknown.stderr).toContain('Run astro-deploy dags --help');
    const badValue = await runCli(['dags', '--deployment-id', DEP, '--wait-timeout', 'soon', '--json'], { env: cliEnv(astro) });
    expect(badValue.code).toBe(2);
    expect(ndjson(badValue.stdout).last).toMatchObject({ type: 'error', code: 'ASTRO_CLI_USAGE', exitCode: 2 });
    // A bad duration points at the help of the command it was given to.
    for (const [command, value] of [['dags', 'soon'], ['wait', '0']]) {
      const badDuration = await runCli([command!, '--deployment-id', DEP, '--wait-timeout', value!], { env: cliEnv(astro) });
      expect(badDuration.code).toBe(2);
      expect(badDuration.stderr).toContain(`Run astro-deploy ${command} --help for the flags.`);
    }
    const noCommand = await runCli(['deploy'], { env: cliEnv(astro) });
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain("Unknown command 'deploy'");
    expect(astro.requests).toHaveLength(0);
  });

  it('2: configuration (no token; a token Astro answers 401 to)', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const project = dagsProject();
    const noToken = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--json'], { env: cliEnv(astro, { ASTRO_API_TOKEN: undefined }) });
    expect(noToken.code).toBe(2);
    expect(ndjson(noToken.stdout).last).toMatchObject({ type: 'error', code: 'ASTRO_CONFIG_MISSING_TOKEN', exitCode: 2 });

    // A well-formed API token this Astro did not sign: 401 on the first call.
    const stranger = await fakeAstro();
    const forged = stranger.mintToken({ organizationId: astro.organizationId });
    const r = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--json'], { env: cliEnv({ baseUrl: astro.baseUrl, token: forged }) });
    expect(r.code).toBe(2);
    expect(ndjson(r.stdout).last).toMatchObject({ type: 'error', code: 'ASTRO_API_UNAUTHORIZED', status: 401, exitCode: 2 });
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
  });

  it('1: the deploy failed (the upload is refused), naming the deploy left behind', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    astro.fail({ route: /^blob\.put/, times: Number.POSITIVE_INFINITY, action: { kind: 'status', status: 403, headers: { 'x-ms-error-code': 'AuthorizationFailure' } } });
    const project = dagsProject();
    const r = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--json'], { env: cliEnv(astro) });
    expect(r.code).toBe(1);
    const { last } = ndjson(r.stdout);
    const deployId = astro.deploys(DEP)[0]!.id;
    expect(last).toMatchObject({ type: 'error', exitCode: 1, deployId });
    expect(String(last.code)).toMatch(/^ASTRO_UPLOAD_/);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
  });

  it('the note on the deploy a failure names says whether it was finalized: before finalize it changes nothing, after it it is live', async () => {
    const project = dagsProject();
    const dags = ['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`];
    const notFinalized = /was created and not finalized: it changes nothing, and deploying again is safe/;
    const noteOf = (stderr: string, deployId: string) => stderr.split('\n').filter((l) => l.includes(`deploy ${deployId} `));

    // Before finalize: Astro refuses the finalize.
    const refused = await fakeAstro({ deployments: [{ id: DEP }] });
    refused.fail({ route: 'deploys.finalize', action: { kind: 'status', status: 400, body: { message: 'no', requestId: 'r1', statusCode: 400 } } });
    const before = await runCli(dags, { env: cliEnv(refused) });
    expect(before.code).toBe(1);
    expect(noteOf(before.stderr, refused.deploys(DEP)[0]!.id)).toEqual([expect.stringMatching(notFinalized)]);

    // After finalize: import errors found by --verify-dags (exit 4), the Airflow API unreachable
    // for the check, and an API error while waiting for the rollout.
    const cases: Array<[string, (astro: Awaited<ReturnType<typeof fakeAstro>>) => void, string[], RegExp]> = [
      ['ASTRO_DAGS_IMPORT_ERRORS', (a) => a.setImportErrors(DEP, [{ filename: 'etl.py', stackTrace: 'SyntaxError' }]), ['--verify-dags'], /was finalized and is live/],
      ['ASTRO_DAGS_VERIFY_UNAVAILABLE', (a) => a.fail({ route: 'airflow.importErrors', times: Number.POSITIVE_INFINITY, action: { kind: 'status', status: 500 } }), ['--verify-dags'], /was finalized and is live/],
      // The deployment is read once before create (deploy:checked); the rollout's polls come after finalize.
      ['ASTRO_API_FORBIDDEN', (a) => a.fail({ route: 'deployments.get', nth: 2, times: Number.POSITIVE_INFINITY, action: { kind: 'status', status: 403, body: { message: 'Forbidden', requestId: 'r2', statusCode: 403 } } }), ['--wait'], /was finalized; the wait for its rollout failed/],
    ];
    for (const [code, arrange, flags, note] of cases) {
      const astro = await fakeAstro({ deployments: [{ id: DEP }] });
      arrange(astro);
      const r = await runCli([...dags, ...flags], { env: cliEnv(astro) });
      expect(r.stderr, code).toMatch(new RegExp(`^${code}: `, 'm'));
      const deploy = astro.deploys(DEP)[0]!;
      expect(deploy.finalizeCount, code).toBe(1);
      const lines = noteOf(r.stderr, deploy.id);
      expect(lines, code).toEqual([expect.stringMatching(note)]);
      expect(r.stderr, code).not.toMatch(notFinalized);
    }
  });

  it('3: the rollout failed (and 3 for a rollout that does not finish in --wait-timeout)', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const project = dagsProject();
    astro.setRollout(DEP, { outcome: 'failed', statusReason: 'scheduler crashed' });
    const failed = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait', '--json'], { env: cliEnv(astro) });
    expect(failed.code).toBe(3);
    expect(ndjson(failed.stdout).last).toMatchObject({ type: 'error', code: 'ASTRO_ROLLOUT_FAILED', exitCode: 3, lastState: { deployStatus: 'FAILED' } });

    astro.setRollout(DEP, { outcome: 'stuck' });
    const stuck = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait-timeout', '1s'], { env: cliEnv(astro) });
    expect(stuck.code).toBe(3);
    expect(stuck.stderr).toMatch(/^ASTRO_ROLLOUT_TIMEOUT: Timed out after 1000 ms/m);
    expect(stuck.stderr).toMatch(/its rollout is what did not finish/);
  });

  it('130: SIGINT mid-upload aborts through the SDK, and nothing is finalized', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    // 1 MiB of incompressible data, read by the fake at 64 KiB/s: the upload takes many seconds.
    const project = dagsProject({ 'dags/data/blob.bin': randomBytes(1 << 20) });
    astro.fail({ route: /^blob\.put/, times: Number.POSITIVE_INFINITY, action: { kind: 'throttle', bytesPerSecond: 64 * 1024 } });
    const child = await spawnCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait', '--json'], { env: cliEnv(astro) });
    await waitForOutput(child.out, (o) => o.stdout.includes('"type":"upload:start"'));
    await new Promise((r) => setTimeout(r, 300));
    const sentAt = Date.now();
    child.kill('SIGINT');
    const r = await child.done;
    expect(r.code).toBe(130);
    expect(Date.now() - sentAt).toBeLessThan(10_000);
    const { last } = ndjson(r.stdout);
    expect(last).toMatchObject({ type: 'error', code: 'ASTRO_ABORTED', exitCode: 130, deployId: astro.deploys(DEP)[0]!.id });
    expect(r.stderr).toContain('interrupted: stopping');
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
    expect(astro.deploys(DEP)[0]).toMatchObject({ status: 'INITIALIZED', finalizeCount: 0 });
  });
});
