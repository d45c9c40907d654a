/**
 * Test helpers: build real file trees in temp folders, run real tools (GNU tar, python3).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { constants, crc32, deflateRawSync } from 'node:zlib';
import { PIECE_BYTES } from '../../src/bundle/gzip.js';

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

/** Every regular file and symlink under `dir`, relative, sorted. */
export async function listTree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await listTree(dir, r)));
    else out.push(r);
  }
  return out.sort();
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

/**
 * What `parallelGzip` must write for `data`, built the slow, obvious way: the fixed header, each
 * 1 MiB piece deflated at `level` (6 unless given) with the 32 KiB before it as dictionary and a
 * sync flush (the last one finished) into an output buffer zlib never fills (a full buffer at the
 * flush makes zlib write one more empty stored block), or `stored(piece, last)` where that gives
 * bytes, then CRC-32 and size.
 */
export function referenceGzip(data: Buffer, stored: (piece: Buffer, at: number, last: boolean) => Buffer | undefined = () => undefined, level = 6): Buffer {
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level === 9 ? 2 : level < 2 ? 4 : 0, 255])];
  for (let at = 0; at < data.length; at += PIECE_BYTES) {
    const piece = data.subarray(at, at + PIECE_BYTES);
    const last = at + PIECE_BYTES >= data.length;
    const dictionary = at > 0 ? data.subarray(Math.max(0, at - 32 * 1024), at) : undefined;
    const options = { level, finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH, chunkSize: 2 * PIECE_BYTES, ...(dictionary ? { dictionary } : {}) };
    parts.push(stored(piece, at, last) ?? deflateRawSync(piece, options));
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data) >>> 0, 0);
  trailer.writeUInt32LE(data.length, 4);
  parts.push(trailer);
  return Buffer.concat(parts);
}
