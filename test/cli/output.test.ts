/**
 * The output modes: the live display on a terminal (under a pseudo-terminal made by util-linux
 * `script`), GitHub Actions annotations and job summary, and the demo against the embedded fake.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { builtBin, CLI_FROM_SOURCE, cliEnv, dagsProject, fakeAstro, ndjson, ROOT, runCli, tempTree } from './helpers.js';

const DEP = 'clclideployment0000000001';
beforeAll(() => builtBin(), 300_000);

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('terminal', () => {
  it('draws a live display (bar, bytes, rate, ETA) in place, then the summary', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, name: 'analytics' }] });
    // Above the 4 MiB of a single Put Blob: blocks, acknowledged one by one, give the progress.
    const project = dagsProject({ 'dags/data/blob.bin': randomBytes(6 * 1024 * 1024) });
    // Slow enough for a few frames and a rate.
    astro.fail({ route: /^blob\.put/, times: Number.POSITIVE_INFINITY, action: { kind: 'throttle', bytesPerSecond: 1024 * 1024 } });
    const cli = [await builtBin(), 'dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait'].map(quote).join(' ');
    // `script` gives the CLI a pseudo-terminal; stty sizes it as a real terminal would be.
    const r = await runCli(['-qfec', `stty rows 40 cols 120; ${cli}`, '/dev/null'], { env: cliEnv(astro, { TERM: 'xterm-256color' }), command: ['script'] });
    expect(r.code, r.stdout).toBe(0);
    const out = r.stdout;
    // Redrawn in place: log-update's erase-line and synchronized-output sequences.
    expect(out).toContain('\u001b[2K');
    expect(out).toContain('\u001b[?2026h');
    expect(out).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\S* \S*uploading/);
    expect(out).toMatch(/█/);
    expect(out).toMatch(/░/);
    expect(out).toMatch(/\d+(\.\d)? MiB \/ 6\.0 MiB, \d+(\.\d)? [KM]iB\/s, ETA \d/);
    expect(out).toMatch(/rolling out/);
    const plain = out.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
    expect(plain).toContain(`✔ deploy ${astro.deploys(DEP)[0]!.id} created (DAG_ONLY)`);
    expect(plain).toContain(`✔ deployed 3 DAG files to ${DEP}`);
    expect(plain).toMatch(/Rollout: HEALTHY/);
  });
});

describe('GitHub Actions', () => {
  it('a job summary of the deploy: deployment, deploy id, type, DAG version, image tag, time', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, name: 'analytics' }] });
    const project = dagsProject();
    const summary = join(tempTree({ 'summary.md': '# earlier step\n' }), 'summary.md');
    const r = await runCli(['dags', '--deployment-name', 'analytics', '--dags-dir', `${project}/dags`, '--wait'], {
      env: cliEnv(astro, { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary }),
    });
    expect(r.code, r.stderr).toBe(0);
    const deploy = astro.deploys(DEP)[0]!;
    const md = readFileSync(summary, 'utf8');
    expect(md.startsWith('# earlier step\n')).toBe(true);
    expect(md).toContain(`### ✅ astro-deploy dags: deployed 2 DAG files to analytics (${DEP})`);
    expect(md).toContain(`| Deployment | analytics (${DEP}) |`);
    expect(md).toContain(`| Deploy ID | ${deploy.id} |`);
    expect(md).toContain('| Type | DAG_ONLY |');
    expect(md).toContain(`| DAG version | ${deploy.dagTarballVersion} |`);
    expect(md).toContain('| Image tag | 3.1-2 |');
    expect(md).toMatch(/^\| Started \| \d{4}-\d\d-\d\dT[\d:.]+Z \|$/m);
    expect(md).toMatch(/^\| Duration \| [\d.]+m?s \|$/m);
    expect(r.stdout).not.toContain('::error');
  });

  it('errors as ::error:: annotations (stderr under --json, so stdout stays NDJSON) and in the summary', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    astro.setRollout(DEP, { outcome: 'failed', statusReason: 'scheduler crashed' });
    const project = dagsProject();
    const summary = join(tempTree({}), 'summary.md');
    const env = cliEnv(astro, { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary });

    const plain = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait'], { env });
    expect(plain.code).toBe(3);
    expect(plain.stdout).toMatch(/^::error title=astro-deploy dags failed \(ASTRO_ROLLOUT_FAILED%2C exit 3\)::Deploy \w+ failed on Astro: scheduler crashed\..*$/m);

    const json = await runCli(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait', '--json'], { env });
    expect(json.code).toBe(3);
    ndjson(json.stdout);
    expect(json.stdout).not.toContain('::error');
    expect(json.stderr).toMatch(/^::error title=astro-deploy dags failed \(ASTRO_ROLLOUT_FAILED%2C exit 3\)::/m);

    const md = readFileSync(summary, 'utf8');
    expect(md).toContain('### ❌ astro-deploy dags failed: `ASTRO_ROLLOUT_FAILED`');
    expect(md).toContain(`| Deployment | ${DEP} |`);
    expect(md).toContain('| Exit code | 3 |');
    expect(md.match(/### ❌/g)).toHaveLength(2);
  });

  it('warnings as ::warning:: annotations', async () => {
    const astro = await fakeAstro({ deployments: [{ id: DEP, isDagDeployEnabled: false }] });
    const r = await runCli(['dag-deploy', 'enable', '--deployment-id', DEP], { env: cliEnv(astro, { GITHUB_ACTIONS: 'true' }) });
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stdout.split('\n').filter((l) => l.startsWith('::warning'));
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]).toMatch(/^::warning title=astro-deploy::.*DAG/);
  });
});

describe('demo', () => {
  it('deploys the sample DAGs to the embedded fake, recovering from a 503, a reset and a lost finalize answer, without a token (from source, as npm run demo)', async () => {
    const r = await runCli(['demo', '--json'], { env: cliEnv(undefined), command: CLI_FROM_SOURCE });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    const types = lines.map((l) => l.type);
    expect(types).toContain('api:retry');
    expect(lines.filter((l) => l.type === 'upload:retry').map((l) => l.cause)).toEqual(expect.arrayContaining(['http-503', 'reset']));
    expect(types).toContain('deploy:finalize-recovered');
    expect(types).toContain('rollout:complete');
    expect(last).toMatchObject({ type: 'result', command: 'demo', exitCode: 0, result: { bundle: { files: 6 } } });
    expect(r.stderr).toMatch(/demo: fake Astro on http:\/\/127\.0\.0\.1:\d+\/v1/);
  });

  it("the examples' headers name commands that run them (npm run demo is the CLI's demo, not an example)", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const examples = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.ts'));
    expect(examples.length).toBeGreaterThan(0);
    for (const file of examples) {
      const header = /^\/\*\*[\s\S]*?\*\//.exec(readFileSync(join(ROOT, 'examples', file), 'utf8'))?.[0] ?? '';
      const commands = [...header.matchAll(/^ \*\s+(npx tsx \S+|npm run \S+)/gm)].map((m) => m[1]!);
      expect(commands, file).not.toEqual([]);
      for (const command of commands) {
        const runs = command.startsWith('npm run ') ? (pkg.scripts[command.slice('npm run '.length)] ?? '') : command;
        expect(runs, `${file}: ${command}`).toMatch(new RegExp(`\\bexamples/${file.replace('.', '\\.')}\\b`));
      }
    }
  });
});

