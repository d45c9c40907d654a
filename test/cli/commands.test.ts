/**
 * The CLI's commands, run as a child process against the fake Astro over real HTTP: what each
 * does at Astro (the fake's state and request log), its --json stream (every line parses, the
 * last is the result), its plain output, and how the deployment is chosen.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/args.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { builtBin, cliEnv, dagsProject, fakeAstro, ndjson, runCli } from './helpers.js';

const DEP = 'clclideployment0000000001';

beforeAll(() => builtBin(), 300_000);

describe('astro-deploy dags', () => {
  it('--json: one line per SDK event, then the result; the deploy is finalized at Astro', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, name: 'analytics' }] });
    const project = dagsProject();
    const r = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--description', 'from CI', '--wait', '--json'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    const types = lines.map((l) => l.type);
    for (const t of ['deploy:checked', 'bundle:complete', 'deploy:created', 'upload:committed', 'deploy:finalized', 'rollout:complete']) expect(types).toContain(t);
    expect(types.filter((t) => t === 'result' || t === 'error')).toEqual(['result']);
    const deploy = astro.deploys(DEP)[0]!;
    expect(last).toMatchObject({ type: 'result', command: 'dags', exitCode: 0, result: { deployId: deploy.id, dagTarballVersion: deploy.dagTarballVersion, bundle: { files: 2 } } });
    expect(deploy).toMatchObject({ type: 'DAG_ONLY', finalizeCount: 1 });
    expect(deploy.description.startsWith('from CI')).toBe(true);
    expect(astro.deployment(DEP).dagTarballVersion).toBe(deploy.dagTarballVersion);
    // Redacted like everything the SDK emits: no SAS signature, no token.
    expect(r.stdout).not.toContain(astro.token);
    expect(r.stdout).not.toMatch(/sig=(?!\[REDACTED\])/);
  });

  it('plain lines when stdout is not a terminal, and the summary at the end', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, name: 'analytics' }] });
    const project = dagsProject();
    const r = await runCli(['dags', '--deployment-id', DEP], { env: cliEnv(astro), cwd: project });
    expect(r.code, r.stderr).toBe(0);
    const deployId = astro.deploys(DEP)[0]!.id;
    expect(r.stdout).toContain(`deploy ${deployId} created (DAG_ONLY)`);
    expect(r.stdout).toMatch(/upload: .* committed in 1 block/);
    expect(r.stdout).toContain(`deployed 2 DAG files to ${DEP}`);
    expect(r.stdout).toContain(`  Deploy ID: ${deployId}`);
    expect(r.stdout).toContain('  Rollout: not waited for');
    // No escape sequences off a terminal.
    expect(r.stdout).not.toContain('\u001b[');
  });

  it('defaults the deployment to project.deployment of .astro/config.yaml, as the Astro CLI does', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const project = dagsProject({ '.astro/config.yaml': `project:\n  name: demo\n  deployment: ${DEP}\n` });
    const r = await runCli(['dags', '--project-dir', project, '--json', '--quiet'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    expect(lines).toHaveLength(1);
    expect(last).toMatchObject({ type: 'result', result: { deployId: astro.deploys(DEP)[0]!.id } });
  });

  it('without any deployment: a usage error, exit 2, nothing sent', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const project = dagsProject();
    const r = await runCli(['dags', '--json'], { env: cliEnv(astro), cwd: project });
    expect(r.code).toBe(2);
    expect(ndjson(r.stdout).last).toMatchObject({ type: 'error', code: 'ASTRO_CLI_USAGE', exitCode: 2 });
    expect(ndjson(r.stdout).last.message).toMatch(/--deployment-id or --deployment-name, or set project.deployment/);
    expect(astro.requests).toHaveLength(0);
  });

  it('by --deployment-name, with --workspace-id to pick among namesakes; an ambiguous name lists the candidates (exit 2)', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, name: 'analytics' }] });
    const other = astro.addDeployment({ name: 'analytics', workspaceId: 'clotherworkspace000000001' });
    const project = dagsProject();

    const ambiguous = await runCli(['dags', '--deployment-name', 'analytics', '--dags-dir', `${project}/dags`, '--json'], { env: cliEnv(astro) });
    expect(ambiguous.code).toBe(2);
    const err = ndjson(ambiguous.stdout).last;
    expect(err).toMatchObject({ type: 'error', code: 'ASTRO_DEPLOYMENT_AMBIGUOUS', exitCode: 2 });
    expect(err.message).toContain(DEP);
    expect(err.message).toContain(other.id);
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);

    const picked = await runCli(
      ['dags', '--deployment-name', 'analytics', '--workspace-id', 'clotherworkspace000000001', '--dags-dir', `${project}/dags`, '--json'],
      { env: cliEnv(astro) },
    );
    expect(picked.code, picked.stderr).toBe(0);
    expect(astro.deploys(other.id)).toHaveLength(1);
    expect(astro.deploys(DEP)).toHaveLength(0);

    const missing = await runCli(['dags', '--deployment-name', 'nope', '--dags-dir', `${project}/dags`], { env: cliEnv(astro) });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/ASTRO_DEPLOYMENT_NOT_FOUND: No deployment named "nope"/);
  });
});

describe('the other commands', () => {
  it('dag-deploy enable, then again (unchanged), then disable', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, isDagDeployEnabled: false }] });
    const on = await runCli(['dag-deploy', 'enable', '--deployment-id', DEP, '--json'], { env: cliEnv(astro) });
    expect(on.code, on.stderr).toBe(0);
    const { lines, last } = ndjson(on.stdout);
    expect(lines.map((l) => l.type)).toContain('dag-deploy:warning');
    expect(last).toMatchObject({ type: 'result', command: 'dag-deploy enable', result: { changed: true, deployment: { isDagDeployEnabled: true } } });
    expect(astro.deployment(DEP).isDagDeployEnabled).toBe(true);

    const again = await runCli(['dag-deploy', 'enable', '--deployment-id', DEP], { env: cliEnv(astro) });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`DAG deploys were already enabled on ${DEP}; nothing was sent`);

    const off = await runCli(['dag-deploy', 'disable', '--deployment-id', DEP], { env: cliEnv(astro) });
    expect(off.code).toBe(0);
    expect(astro.deployment(DEP).isDagDeployEnabled).toBe(false);
    expect(astro.requestsFor('deployments.update')).toHaveLength(2);
  });

  it('wait: until the deployment runs the deploy', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }], rolloutDelayMs: 600 });
    const project = dagsProject();
    const deployed = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--json', '--quiet'], { env: cliEnv(astro) });
    const deployId = (ndjson(deployed.stdout).last.result as { deployId: string }).deployId;
    const r = await runCli(['wait', '--deployment-id', DEP, '--deploy-id', deployId, '--wait-timeout', '30s', '--json'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    expect(lines.some((l) => l.type === 'rollout:poll')).toBe(true);
    expect(last).toMatchObject({ type: 'result', command: 'wait', result: { snapshot: { deploymentStatus: 'HEALTHY', deployStatus: 'DEPLOYED' } } });
    expect(astro.requestsFor('deploys.get').length).toBeGreaterThan(0);
  });

  it('deployments list: a table, or the deployments as the result', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, name: 'analytics' }, { id: 'clclideployment0000000002', name: 'reporting', isDagDeployEnabled: false }] });
    const table = await runCli(['deployments', 'list'], { env: cliEnv(astro) });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^ID +NAME +WORKSPACE +STATUS +RUNTIME +DAG DEPLOYS$/m);
    expect(table.stdout).toMatch(new RegExp(`^${DEP} +analytics +\\S+ +HEALTHY +3\\.1-2 +enabled$`, 'm'));
    expect(table.stdout).toContain('2 deployments');
    const json = await runCli(['deployments', 'list', '--json'], { env: cliEnv(astro) });
    const result = ndjson(json.stdout).last.result as Array<{ id: string; name: string }>;
    expect(result.map((d) => d.name).sort()).toEqual(['analytics', 'reporting']);
  });

  it('--help for every command, exit 0, nothing sent', async () => {
    const env = cliEnv(undefined);
    const top = await runCli(['--help'], { env });
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toContain(`  ${c.name}`);
    // Every exit code the CLI can end with, 143 (SIGTERM) included.
    const exitCodes = top.stdout.slice(top.stdout.indexOf('Exit codes:'));
    for (const code of Object.values(ExitCode)) expect(exitCodes).toMatch(new RegExp(`\\b${code} [a-z]`));
    for (const c of COMMANDS) {
      const r = await runCli([c.name, '--help'], { env });
      expect(r.code, c.name).toBe(0);
      expect(r.stdout).toContain(`Usage: astro-deploy ${c.name}`);
      expect(r.stdout).toContain('--json');
    }
  });
});

describe('planning, skipping, rolling back, checking the DAGs', () => {
  it('--dry-run: the plan as the result, and nothing but reads at Astro', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const project = dagsProject();
    const r = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--dry-run', '--json'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    expect(ndjson(r.stdout).last).toMatchObject({
      type: 'result',
      result: { dryRun: true, plan: { deploymentId: DEP, deployType: 'DAG_ONLY', wouldDeploy: true, refusals: [], bundle: { files: 2 } } },
    });
    expect(astro.requests.filter((q) => q.method !== 'GET')).toEqual([]);
    expect(astro.deploys(DEP)).toHaveLength(0);
  });

  it('--dry-run that the real run would refuse exits as that run would (DAG deploys off: 1), listing the refusal', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, isDagDeployEnabled: false }] });
    const project = dagsProject();
    const r = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--dry-run'], { env: cliEnv(astro) });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('dry run: the deploy to');
    expect(r.stdout).toMatch(/Refused: ASTRO_DAG_DEPLOY_DISABLED: /);
    expect(astro.deploys(DEP)).toHaveLength(0);
  });

  it('--skip-unchanged: exit 0 without a deploy when the deployment runs this bundle', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const project = dagsProject();
    const args = ['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--skip-unchanged', '--wait', '--json'];
    const first = await runCli(args, { env: cliEnv(astro) });
    expect(first.code, first.stderr).toBe(0);
    const firstId = (ndjson(first.stdout).last.result as { deployId: string }).deployId;
    const second = await runCli(args, { env: cliEnv(astro) });
    expect(second.code, second.stderr).toBe(0);
    expect(ndjson(second.stdout).last).toMatchObject({ type: 'result', result: { skipped: 'unchanged', runningDeployId: firstId } });
    expect(astro.deploys(DEP)).toHaveLength(1);
  });

  it('rollback --to previous --wait: the deployment runs the earlier DAGs again', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const one = dagsProject();
    const two = dagsProject({ 'dags/third.py': 'DAG_ID = "third"\n' });
    await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${one}/dags`, '--wait', '--quiet'], { env: cliEnv(astro) });
    const firstVersion = astro.deployment(DEP).dagTarballVersion;
    await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${two}/dags`, '--wait', '--quiet'], { env: cliEnv(astro) });
    expect(astro.deployment(DEP).dagTarballVersion).not.toBe(firstVersion);
    const r = await runCli(['rollback', '--deployment-id', DEP, '--wait', '--json'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    expect(lines.map((l) => l.type)).toEqual(expect.arrayContaining(['rollback:target', 'rollback:started', 'rollout:complete']));
    expect(last).toMatchObject({ type: 'result', command: 'rollback', result: { target: { id: astro.deploys(DEP)[0]!.id } } });
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(1);
    expect(astro.deployment(DEP).dagTarballVersion).toBe(firstVersion);
  });

  it('rollback with nothing to roll back to fails (1)', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    const r = await runCli(['rollback', '--deployment-id', DEP], { env: cliEnv(astro) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ASTRO_ROLLBACK_NO_TARGET: /m);
  });

  it('--verify-dags: an import error in a shipped file after the rollout exits 4; the deploy stays live', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    astro.setImportErrors(DEP, [{ filename: 'etl.py', stackTrace: "ModuleNotFoundError: No module named 'pandas'" }]);
    const project = dagsProject();
    const r = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--verify-dags', '--json'], { env: cliEnv(astro) });
    expect(r.code).toBe(4);
    const { lines, last } = ndjson(r.stdout);
    expect(lines.find((l) => l.type === 'rollout:dags-verified')).toMatchObject({ checked: true, importErrors: 1 });
    expect(last).toMatchObject({ type: 'error', code: 'ASTRO_DAGS_IMPORT_ERRORS', exitCode: 4 });
    expect(astro.deploys(DEP)[0]).toMatchObject({ finalizeCount: 1 });
  });
});
