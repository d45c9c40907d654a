/**
 * Test helpers: build real file trees in temp folders, run real tools (GNU tar, python3).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** A tree spec: file content, `{ link }` for a symlink, `{ dir: true }` for an empty folder. */
export type TreeSpec = Record<string, string | Buffer | { link: string } | { dir: true } | { content: string | Buffer; mode: number }>;

const made: string[] = [];

/** A fresh temp folder (removed by {@link cleanupTemp}). */
export async function tempDir(label = 'bundle-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), label));
  made.push(dir);
  return dir;
}

/** Create `spec` under a new temp folder's `dags/` and return that folder. */
export async function makeTree(spec: TreeSpec, base?: string): Promise<string> {
  const root = path.join(base ?? (await tempDir()), 'dags');
  await mkdir(root, { recursive: true });
  await writeTree(root, spec);
  return root;
}

/** Write `spec` into an existing folder. */
export async function writeTree(root: string, spec: TreeSpec): Promise<void> {
  for (const [rel, value] of Object.entries(spec)) {
    const abs = path.join(root, rel);
    await mkdir(path.dirname(abs), { recursive: true });
    if (typeof value === 'string' || Buffer.isBuffer(value)) {
      await writeFile(abs, value);
    } else if ('link' in value) {
      await symlink(value.link, abs);
    } else if ('dir' in value) {
      await mkdir(abs, { recursive: true });
    } else {
      await writeFile(abs, value.content);
      await chmod(abs, value.mode);
    }
  }
}

/** Set the mtime (and atime) of every listed path, in seconds. */
export async function touch(root: string, rels: string[], seconds: number): Promise<void> {
  for (const rel of rels) await utimes(path.join(root, rel), seconds, seconds);
}

/** Remove every temp folder made by this module. */
export async function cleanupTemp(): Promise<void> {
  while (made.length > 0) await rm(made.pop()!, { recursive: true, force: true });
}

/** Run a program; rejects (failing the test) if it is missing or exits non-zero. */
export async function run(cmd: string, args: string[], options: { cwd?: string; input?: string } = {}): Promise<string> {
  if (options.input !== undefined) {
    return await new Promise((resolve, reject) => {
      const child = execFile(cmd, args, { cwd: options.cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
      child.stdin!.end(options.input);
    });
  }
  const { stdout } = await execFileP(cmd, args, { cwd: options.cwd, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Run a Python 3 script with JSON on stdin, parse its JSON stdout. */
export async function python<T>(script: string, input: unknown): Promise<T> {
  const out = await run('python3', ['-c', script], { input: JSON.stringify(input) });
  return JSON.parse(out) as T;
}
