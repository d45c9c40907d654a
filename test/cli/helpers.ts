/**
 * Running the CLI as a child process, as a CI job runs it: the package's bin, built by tsup from
 * tsup.config.ts once per test process (ESM, no types) into a folder of its own under
 * node_modules/.cache (so it never races another build of dist/), with the fake Astro's URL and
 * token in ASTRO_API_URL / ASTRO_API_TOKEN, over real HTTP. `CLI_FROM_SOURCE` runs src/cli/main.ts
 * through tsx, as `npm run demo` does.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expect, onTestFinished } from 'vitest';
import { createFakeAstro, type FakeAstro, type FakeAstroOptions } from '../../src/testing/index.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_SOURCE = join(ROOT, 'src/cli/main.ts');
/** tsx's loader by URL, so the CLI can run from any folder (a project outside this repository). */
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
/** The CLI from source, through tsx (what `npm run demo` runs). */
export const CLI_FROM_SOURCE = [process.execPath, '--import', TSX, CLI_SOURCE];

let built: Promise<string> | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The built CLI (its path): `tsup --out-dir <private folder> --no-dts` with the package's
 * tsup.config.ts, once per test process; the folder is removed when the process exits. This is
 * the ES module the package's bin (`astro-deploy.cjs`, see {@link builtPackageBin}) loads; the
 * CLI tests run it directly.
 */
export function builtBin(): Promise<string> {
  built ??= (async () => {
    const parent = join(ROOT, 'node_modules/.cache/astro-deploy-cli-test');
    // Folders of test processes that are gone (a worker killed before its exit hook ran).
    for (const name of existsSync(parent) ? readdirSync(parent) : []) {
      if (/^\d+$/.test(name) && !alive(Number(name))) rmSync(join(parent, name), { recursive: true, force: true });
    }
    const out = join(parent, String(process.pid));
    process.once('exit', () => rmSync(out, { recursive: true, force: true }));
    await promisify(execFile)(join(ROOT, 'node_modules/.bin/tsup'), ['--out-dir', out, '--no-dts'], { cwd: ROOT, timeout: 240_000 });
    return join(out, 'cli.js');
  })();
  return built;
}

/** The package's bin as the same build made it: the CommonJS start file beside {@link builtBin}. */
export async function builtPackageBin(): Promise<string> {
  return join(dirname(await builtBin()), 'astro-deploy.cjs');
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a CI job: the fake's URL and token, nothing of the runner that would change the output. */
export function cliEnv(astro: Pick<FakeAstro, 'baseUrl' | 'token'> | undefined, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['GITHUB_ACTIONS', 'GITHUB_STEP_SUMMARY', 'NO_COLOR', 'ASTRO_SDK_LOG', 'ASTRO_API_TOKEN', 'ASTRO_API_URL', 'CI']) delete env[key];
  if (astro) {
    env.ASTRO_API_URL = astro.baseUrl;
    env.ASTRO_API_TOKEN = astro.token;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Start the CLI; `command` defaults to the built bin, run directly (its shebang and mode make it executable). */
export async function spawnCli(
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; command?: string[] },
): Promise<ChildProcessWithoutNullStreams & { out: { stdout: string; stderr: string }; done: Promise<CliResult> }> {
  const [file, ...pre] = options.command ?? [await builtBin()];
  const child = spawn(file!, [...pre, ...args], { env: options.env, cwd: options.cwd ?? ROOT, stdio: 'pipe' });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, ...out }));
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return Object.assign(child, { out, done });
}

/** Run the CLI to its end. */
export async function runCli(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; command?: string[] }): Promise<CliResult> {
  const child = await spawnCli(args, options);
  child.stdin.end();
  return child.done;
}

/** Every stdout line parsed as JSON (the test fails on a line that is not); the last one apart. */
export function ndjson(stdout: string): { lines: Array<Record<string, unknown>>; last: Record<string, unknown> } {
  const raw = stdout.split('\n').filter((l) => l !== '');
  expect(raw.length).toBeGreaterThan(0);
  const lines = raw.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`stdout line is not JSON: ${l}`);
    }
  });
  for (const l of lines) expect(typeof l.type).toBe('string');
  return { lines, last: lines[lines.length - 1]! };
}

/** A fake Astro for one test (closed when it ends). */
export async function fakeAstro(options: FakeAstroOptions = {}): Promise<FakeAstro> {
  const astro = await createFakeAstro({ rolloutDelayMs: 100, ...options });
  onTestFinished(() => astro.close());
  return astro;
}

/** A folder of files for one test (removed when it ends); returns its path. */
export function tempTree(files: Record<string, string | Buffer>, prefix = 'cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

/** A project with a dags folder of two small DAG files. */
export function dagsProject(extra: Record<string, string | Buffer> = {}): string {
  return tempTree({
    'dags/etl.py': 'from airflow.sdk import dag\n\nDAG_ID = "etl"\n',
    'dags/report.py': 'from airflow.sdk import dag\n\nDAG_ID = "report"\n',
    ...extra,
  });
}

/** Wait until `predicate` holds for the child's output (polling), or fail after `timeoutMs`. */
export async function waitForOutput(out: { stdout: string; stderr: string }, predicate: (o: { stdout: string; stderr: string }) => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate(out)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for CLI output; stdout so far:\n${out.stdout}\nstderr:\n${out.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
