/**
 * Benchmark: createBundle vs GNU `tar -czf` on the same generated trees, in one run.
 *
 *   node --import tsx bench/bundle.ts
 *
 * Trees (generated in os.tmpdir(), removed at the end):
 *   - small: 20,000 files of 2-8 KB in 200 folders (text-like, partly compressible);
 *     `BENCH_SMALL_FILES=80000` changes the count, to see how peak RSS grows with it;
 *   - large: 200 MB in 4 files of random (incompressible) bytes.
 * Each packer runs in its own process under `/usr/bin/time -v` (wall time and "Maximum resident
 * set size"), alternately, `RUNS` times; the best wall time and the highest peak RSS are kept.
 * For `tar -czf` the RSS is the larger of tar and its gzip child (rusage reports a maximum, not a
 * sum). A `node --import tsx` process that only loads the bundle module is measured as a baseline
 * so the runtime's own startup time and memory can be told apart from the packing work.
 * Both sides compress at gzip level 6.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile, open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const RUNS = 2;
/** `BENCH_SMALL_FILES=80000` shows how peak RSS grows with the file count (rounded to the 200 folders). */
const SMALL_FILES = Math.max(200, Math.round(Number(process.env.BENCH_SMALL_FILES ?? 20_000) / 200) * 200);
const TIME = '/usr/bin/time';


/** The packer process: bundle `dir` into `outDir`, print timing as JSON. */
async function child(dir: string, outDir: string): Promise<void> {
  const { createBundle } = await import('../src/bundle/index.js');
  const started = performance.now();
  const result = await createBundle(dir, { output: { type: 'file', dir: outDir }, prefix: 'dags', defaultExcludes: false, hiddenImports: 'off' });
  const inProcessMs = performance.now() - started;
  process.stdout.write(JSON.stringify({ inProcessMs, bytes: result.bytes }));
  await result.cleanup();
}

interface Measure {
  wallMs: number;
  maxRssKb: number;
  inProcessMs?: number;
  outBytes?: number;
}

/** Run a command under /usr/bin/time -v; parse wall time and peak RSS. */
async function measure(cmd: string, args: string[], cwd?: string): Promise<Measure> {
  return await new Promise((resolve, reject) => {
    const p = spawn(TIME, ['-v', cmd, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}: ${err.slice(-2000)}`));
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(err);
      if (!rss || !wall) return reject(new Error(`could not parse /usr/bin/time output:\n${err}`));
      const wallMs = ((Number(wall[1] ?? 0) * 60 + Number(wall[2])) * 60 + Number(wall[3])) * 1000;
      const extra = out.trim().startsWith('{') ? (JSON.parse(out) as { inProcessMs?: number; bytes?: number }) : {};
      resolve({ wallMs, maxRssKb: Number(rss[1]), inProcessMs: extra.inProcessMs, outBytes: extra.bytes });
    });
  });
}

/** Deterministic-enough pseudo text: hex of random bytes plus repeated keywords (gzips ~2-3x). */
function textLike(bytes: number): Buffer {
  const words = ['from airflow import DAG', 'def task():', '    return', 'import os', 'schedule=None'];
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const line = Math.random() < 0.5 ? words[Math.floor(Math.random() * words.length)]! : randomBytes(24).toString('hex');
    parts.push(line);
    n += line.length + 1;
  }
  return Buffer.from(parts.join('\n')).subarray(0, bytes);
}

async function makeSmallTree(base: string): Promise<{ dir: string; files: number; bytes: number }> {
  const dir = path.join(base, 'small', 'dags');
  let bytes = 0;
  const files = SMALL_FILES;
  for (let d = 0; d < 200; d++) {
    const sub = path.join(dir, `team_${d}`);
    await mkdir(sub, { recursive: true });
    await Promise.all(
      Array.from({ length: files / 200 }, async (_, i) => {
        const size = 2048 + Math.floor(Math.random() * 6144);
        bytes += size;
        await writeFile(path.join(sub, `dag_${i}.py`), textLike(size));
      }),
    );
  }
  return { dir, files, bytes };
}

async function makeLargeTree(base: string): Promise<{ dir: string; files: number; bytes: number }> {
  const dir = path.join(base, 'large', 'dags');
  await mkdir(dir, { recursive: true });
  const perFile = 50 * 1024 * 1024;
  for (let f = 0; f < 4; f++) {
    const fh = await open(path.join(dir, `blob_${f}.bin`), 'w');
    for (let written = 0; written < perFile; written += 4 * 1024 * 1024) await fh.write(randomBytes(4 * 1024 * 1024));
    await fh.close();
  }
  await writeFile(path.join(dir, 'dag.py'), 'from airflow import DAG\n');
  return { dir, files: 5, bytes: 4 * perFile + 24 };
}

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  if (!existsSync(TIME)) throw new Error(`${TIME} is required (apt-get install time)`);
  await execFileP('tar', ['--version']);
  const base = await mkdtemp(path.join(os.tmpdir(), 'astro-bundle-bench-'));
  const started = performance.now();
  const rows: string[][] = [];
  try {
    const baseline = await measure(process.execPath, ['--import', 'tsx', SELF, '--baseline'], path.dirname(SELF));
    const genStart = performance.now();
    const trees = [
      { name: `small: ${SMALL_FILES.toLocaleString('en')} x 2-8 KB`, ...(await makeSmallTree(base)) },
      { name: 'large: 4 x 50 MB random', ...(await makeLargeTree(base)) },
    ];
    console.log(`generated trees in ${sec(performance.now() - genStart)} s under ${base}`);
    const out = path.join(base, 'out');
    await mkdir(out);
    for (const tree of trees) {
      const tarRuns: Measure[] = [];
      const sdkRuns: Measure[] = [];
      for (let r = 0; r < RUNS; r++) {
        const tarOut = path.join(out, 'tar.tar.gz');
        tarRuns.push(await measure('tar', ['-czf', tarOut, '-C', path.dirname(tree.dir), 'dags']));
        const { size } = await import('node:fs/promises').then((fs) => fs.stat(tarOut));
        tarRuns[tarRuns.length - 1]!.outBytes = size;
        await rm(tarOut);
        sdkRuns.push(await measure(process.execPath, ['--import', 'tsx', SELF, '--child', tree.dir, out], path.dirname(SELF)));
      }
      const best = (runs: Measure[]) => ({
        wallMs: Math.min(...runs.map((m) => m.wallMs)),
        maxRssKb: Math.max(...runs.map((m) => m.maxRssKb)),
        inProcessMs: runs.every((m) => m.inProcessMs !== undefined) ? Math.min(...runs.map((m) => m.inProcessMs!)) : undefined,
        outBytes: runs[0]!.outBytes ?? 0,
      });
      const t = best(tarRuns);
      const s = best(sdkRuns);
      rows.push([tree.name, `${tree.files}`, mb(tree.bytes), 'tar -czf', sec(t.wallMs), '-', mb(t.maxRssKb * 1024), mb(t.outBytes), '1.00', '1.00']);
      rows.push([
        '',
        '',
        '',
        'createBundle',
        sec(s.wallMs),
        sec(s.inProcessMs ?? 0),
        mb(s.maxRssKb * 1024),
        mb(s.outBytes),
        (s.wallMs / t.wallMs).toFixed(2),
        (s.maxRssKb / t.maxRssKb).toFixed(1),
      ]);
    }
    rows.push(['node+tsx startup only', '', '', 'baseline', sec(baseline.wallMs), '-', mb(baseline.maxRssKb * 1024), '-', '-', '-']);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  const header = ['tree', 'files', 'MB in', 'packer', 'wall s', 'in-proc s', 'peak RSS MB', 'MB out', 'wall ratio', 'RSS ratio'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  console.log(`\nratios are createBundle / tar -czf (best of ${RUNS} runs each, same tree, same run); total ${sec(performance.now() - started)} s on ${os.cpus().length} CPUs, node ${process.version}`);
}

// Dispatch last: the helpers above must be initialised before top-level await runs them.
if (process.argv[2] === '--child') {
  await child(process.argv[3]!, process.argv[4]!);
} else if (process.argv[2] === '--baseline') {
  await import('../src/bundle/index.js');
  process.stdout.write(JSON.stringify({ inProcessMs: 0 }));
} else {
  await main();
}
