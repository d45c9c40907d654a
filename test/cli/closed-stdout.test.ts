/**
 * A reader that goes away: `astro-deploy dags --json | head -1` (or `| grep -m1 '"deploy:created"'`)
 * through a real pipe, made by the shell. Node ignores SIGPIPE, so every write after `head` exits
 * fails with EPIPE; the CLI stops writing to stdout, says so once on stderr, and the deploy runs to
 * its end: finalized and rolled out at Astro, exit 0 (see the README, Command line, Output).
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { builtBin, cliEnv, dagsProject, fakeAstro } from './helpers.js';

const DEP = 'clclipipedeployment000001';

beforeAll(() => builtBin(), 300_000);

/**
 * `<bin> <args> | head -1` in `sh`: the CLI's stdout is a pipe whose only reader is `head`. Resolves
 * with the CLI's exit code (written by the shell to fd 3), its stderr, and what `head` printed.
 */
async function pipedToHead(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number; stderr: string; head: string }> {
  const bin = await builtBin();
  const sh = spawn('sh', ['-c', '{ "$@"; echo "$?" >&3; } | head -1', 'sh', process.execPath, bin, ...args], {
    env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    if (sh.exitCode === null && sh.signalCode === null) sh.kill('SIGKILL');
  });
  let head = '';
  let stderr = '';
  let code = '';
  sh.stdout!.setEncoding('utf8').on('data', (d: string) => (head += d));
  sh.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  (sh.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8');
  (sh.stdio[3] as NodeJS.ReadableStream).on('data', (d: string) => (code += d));
  await new Promise<void>((resolve, reject) => {
    sh.once('error', reject);
    sh.once('close', () => resolve());
  });
  return { code: Number(code.trim()), stderr, head };
}

describe('stdout closed by its reader', () => {
  it.each([
    ['--json', ['--json']],
    ['plain lines', []],
  ])('%s | head -1: no crash, output stops, the deploy runs to its end (finalized, rolled out) and exits 0', async (_label, extra) => {
    const astro = await fakeAstro({ deployments: [{ id: DEP }] });
    // A slow upload, so the CLI has lines to write long after head has gone.
    const project = dagsProject({ 'dags/data/blob.bin': randomBytes(256 * 1024) });
    astro.fail({ route: /^blob\.put/, times: Number.POSITIVE_INFINITY, action: { kind: 'throttle', bytesPerSecond: 256 * 1024 } });
    const r = await pipedToHead(['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--wait', ...extra], cliEnv(astro), project);

    expect(r.stderr).not.toMatch(/Error: write|Unhandled|node:events|\n\s+at /);
    expect(r.stderr).toContain('stdout was closed by its reader');
    expect(r.code).toBe(0);
    expect(r.head.split('\n').filter(Boolean)).toHaveLength(1);
    if (extra.includes('--json')) expect(JSON.parse(r.head)).toMatchObject({ type: expect.any(String) });

    const [deploy, ...others] = astro.deploys(DEP);
    expect(others).toEqual([]);
    expect(deploy).toMatchObject({ finalizeCount: 1, status: 'DEPLOYED' });
    expect(astro.deployment(DEP).dagTarballVersion).toBe(deploy!.dagTarballVersion);
  });
});
