/**
 * The package's `bin` as a user gets it: package.json names dist/astro-deploy.cjs, which tsup
 * builds from src/cli/start.cts as a CommonJS file whose first line is the `#!/usr/bin/env node`
 * shebang and that is executable, so it runs with no `node` in front. It sizes libuv's thread pool
 * for the machine and then loads the CLI, dist/cli.js (an ES module, which the other CLI tests run
 * directly).
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { builtPackageBin, cliEnv, ROOT, runCli } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

beforeAll(() => builtPackageBin(), 300_000);

/**
 * A `--require` preload that makes `os.availableParallelism()` answer FAKE_CORES and, when the CLI
 * exits, writes to stderr the pool size the process was given and how many threads it runs. The
 * exit first waits for one job on libuv's pool, which starts the pool if nothing has yet (Node 20
 * reads ES module files on it, Node 22 and later do not), so its threads are always counted.
 */
const PRELOAD = `
const os = require('node:os');
const cores = Number(process.env.FAKE_CORES);
if (cores) os.availableParallelism = () => cores;
const exit = process.exit;
process.exit = (code) => {
  require('node:crypto').pbkdf2('x', 'y', 1, 8, 'sha256', () => {
    const threads = require('node:fs').readdirSync('/proc/self/task').length;
    process.stderr.write('\\npool=' + (process.env.UV_THREADPOOL_SIZE ?? 'unset') + ' threads=' + threads + '\\n');
    exit.call(process, code);
  });
};
`;

describe('the built bin', () => {
  it('is package.json bin astro-deploy: an executable CommonJS file with a node shebang that runs the CLI', async () => {
    expect(pkg.bin).toEqual({ 'astro-deploy': './dist/astro-deploy.cjs' });
    const bin = await builtPackageBin();
    expect(basename(bin)).toBe(basename(pkg.bin['astro-deploy']!));
    const text = readFileSync(bin, 'utf8');
    expect(text.split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(text).toMatch(/require\("(node:)?os"\)/);
    expect(text).not.toMatch(/^import /m);
    expect(statSync(bin).mode & 0o111).toBe(0o111);
    const version = await runCli(['--version'], { env: cliEnv(undefined), command: [bin] });
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(`astro-deploy ${pkg.version}`);
  });

  it('gives libuv a thread per core beyond four (at most 16) before the CLI loads, and keeps a UV_THREADPOOL_SIZE the user set', async () => {
    const bin = await builtPackageBin();
    const dir = mkdtempSync(join(tmpdir(), 'astro-bin-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const preload = join(dir, 'fake-cores.cjs');
    writeFileSync(preload, PRELOAD);
    const probe = async (cores: number, set?: string) => {
      const env = cliEnv(undefined, { NODE_OPTIONS: `--require ${preload}`, FAKE_CORES: String(cores), UV_THREADPOOL_SIZE: set });
      const r = await runCli(['--version'], { env, command: [bin] });
      expect(r.code).toBe(0);
      const m = /pool=(\S+) threads=(\d+)/.exec(r.stderr);
      expect(m, r.stderr).not.toBeNull();
      return { pool: m![1], threads: Number(m![2]) };
    };
    // libuv's default pool (4 threads) on a machine of 4 cores or fewer.
    const small = await probe(2);
    expect(small.pool).toBe('unset');
    expect((await probe(4)).pool).toBe('unset');
    // More cores: the variable is set before the ES module loads, so the pool really has that many.
    const sixteen = await probe(16);
    expect(sixteen.pool).toBe('16');
    expect(sixteen.threads - small.threads).toBe(16 - 4);
    expect((await probe(8)).pool).toBe('8');
    expect((await probe(64)).pool).toBe('16');
    // The user's own value wins, whatever the cores.
    const own = await probe(16, '6');
    expect(own.pool).toBe('6');
    expect(own.threads - small.threads).toBe(6 - 4);
  });
});
