/**
 * Benchmark: createBundle vs `tar -I 'pigz -p 2' -cf` vs GNU `tar -czf` on the same generated
 * trees, in one run.
 *
 *   node --import tsx bench/bundle.ts
 *   BENCH_TREES=small BENCH_SMALL_FILES=100000 BENCH_RUNS=3 node --import tsx bench/bundle.ts
 *   node --import tsx bench/bundle.ts --generate mixed /tmp/trees   # a tree to profile by hand
 *   BENCH_COMPARE=/tmp/old-checkout node --import tsx bench/bundle.ts  # before/after, alternating
 *
 * Trees (generated in os.tmpdir(), removed at the end; `BENCH_TREES=small,large,mixed` picks them):
 *   - small: 20,000 files of 2-8 KB in 200 folders (text-like, partly compressible);
 *     `BENCH_SMALL_FILES=100000` changes the count, to see how peak RSS grows with it;
 *   - large: 200 MB in 4 files of random (incompressible) bytes;
 *   - mixed: a DAG repository with data in it, 2,637 files / ~209 MiB: DAG and helper modules,
 *     SQL, YAML and docs (1-40 KB, ~2,600 files), plus CSV/JSON extracts (compressible, a few MB
 *     each), and parquet parts and pickled models (incompressible, 2-12 MB each);
 *   - ignored: 10,000 DAG files of 1-3 KB whose `.airflowignore` hides the `helpers/` and
 *     `common/` folders they import from. createBundle packs it with the hidden-import guard on
 *     (its default), which reads and parses every shipped `.py` file before packing and keeps the
 *     imported helpers; the other trees are packed with the guard off, as tar knows no such thing.
 * Each packer runs in its own process under `/usr/bin/time -v` (wall time, user+sys CPU and
 * "Maximum resident set size"), the three alternating, `BENCH_RUNS` times (default 3). Wall time
 * is reported as the best and the median; ratios use the best of each. Peak RSS is the highest
 * seen; for tar it is the larger of tar and its compressor child (rusage reports a maximum, not a
 * sum). tar and pigz compress at gzip's level 6, createBundle at its default (3). A `node --import tsx` process that only loads
 * the bundle module is measured as a baseline, so the runtime's own startup time and memory can
 * be told apart from the packing work; the createBundle call's own time (best of the runs) is
 * shown next to its process's. createBundle runs as plain JavaScript bundled by esbuild
 * (what users run); `BENCH_LOADER=tsx` runs it through tsx instead, as first measured in #14.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
/** `BENCH_SMALL_FILES=100000` shows how peak RSS grows with the file count (rounded to the 200 folders). */
const SMALL_FILES = Math.max(200, Math.round(Number(process.env.BENCH_SMALL_FILES ?? 20_000) / 200) * 200);
const TREES = (process.env.BENCH_TREES ?? 'small,large,mixed,ignored').split(',').map((t) => t.trim()).filter(Boolean);
const TIME = '/usr/bin/time';
/**
 * How the createBundle process runs: `bundled` (default) runs this file bundled by esbuild into
 * plain JavaScript, as users run the published build; `tsx` compiles the sources on load, as
 * the first figures of issue #14 were taken (adds ~0.4 s and ~40 MB to every run).
 */
const LOADER = process.env.BENCH_LOADER === 'tsx' ? 'tsx' : 'bundled';
const ESBUILD = fileURLToPath(new URL('../node_modules/.bin/esbuild', import.meta.url));
const PIGZ = '/usr/bin/pigz';
/**
 * `BENCH_COMPARE=/path/to/other/checkout` adds that checkout's createBundle (its own
 * bench/bundle.ts, bundled the same way) as a fourth packer, alternating with the others: a
 * before/after comparison within one invocation, under the same load.
 */
const COMPARE = process.env.BENCH_COMPARE ? path.resolve(process.env.BENCH_COMPARE) : undefined;

/** The packer process: bundle `dir` into `outDir`, print timing as JSON. */
async function child(dir: string, outDir: string, guard: boolean): Promise<void> {
  const { createBundle } = await import('../src/bundle/index.js');
  const started = performance.now();
  const result = await createBundle(dir, { output: { type: 'file', dir: outDir }, prefix: 'dags', defaultExcludes: false, hiddenImports: guard ? 'warn' : 'off' });
  const inProcessMs = performance.now() - started;
  process.stdout.write(JSON.stringify({ inProcessMs, bytes: result.bytes }));
  await result.cleanup();
}

interface Measure {
  wallMs: number;
  cpuMs: number;
  maxRssKb: number;
  inProcessMs?: number;
  outBytes: number;
}

/** Run a command under /usr/bin/time -v; parse wall time, CPU time and peak RSS. */
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
      const user = /User time \(seconds\): ([\d.]+)/.exec(err);
      const sys = /System time \(seconds\): ([\d.]+)/.exec(err);
      if (!rss || !wall || !user || !sys) return reject(new Error(`could not parse /usr/bin/time output:\n${err}`));
      const wallMs = ((Number(wall[1] ?? 0) * 60 + Number(wall[2])) * 60 + Number(wall[3])) * 1000;
      const extra = out.trim().startsWith('{') ? (JSON.parse(out) as { inProcessMs?: number; bytes?: number }) : {};
      resolve({ wallMs, cpuMs: (Number(user[1]) + Number(sys[1])) * 1000, maxRssKb: Number(rss[1]), inProcessMs: extra.inProcessMs, outBytes: extra.bytes ?? 0 });
    });
  });
}

/** Seeded xorshift32, so that the text trees are the same from run to run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const WORDS = ['from airflow import DAG', 'def task():', '    return', 'import os', 'schedule=None', 'with DAG(dag_id=', '    op = PythonOperator(', 'SELECT id, name FROM', '  - name:'];

/** Pseudo text: hex of random bytes plus repeated keywords (gzips ~2-3x). */
function textLike(bytes: number, rand: () => number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    let line: string;
    if (rand() < 0.5) line = WORDS[Math.floor(rand() * WORDS.length)]!;
    else {
      line = '';
      for (let i = 0; i < 6; i++) line += Math.floor(rand() * 0x100000000).toString(16).padStart(8, '0');
    }
    parts.push(line);
    n += line.length + 1;
  }
  return Buffer.from(parts.join('\n')).subarray(0, bytes);
}

/** CSV-like rows: dates, ids, categories and amounts (gzips ~3-4x, like real extracts). */
function csvLike(bytes: number, rand: () => number): Buffer {
  const cats = ['retail', 'wholesale', 'online', 'partner', 'internal'];
  const parts: string[] = ['date,customer_id,segment,amount,currency'];
  let n = parts[0]!.length;
  while (n < bytes) {
    const day = 1 + Math.floor(rand() * 28);
    const line = `2024-0${1 + Math.floor(rand() * 9)}-${day < 10 ? '0' : ''}${day},${Math.floor(rand() * 1e7)},${cats[Math.floor(rand() * cats.length)]},${(rand() * 1e4).toFixed(2)},USD`;
    parts.push(line);
    n += line.length + 1;
  }
  return Buffer.from(parts.join('\n')).subarray(0, bytes);
}

interface Tree {
  name: string;
  dir: string;
  files: number;
  bytes: number;
  /** Pack with the hidden-import guard on (createBundle's default) instead of off. */
  guard?: boolean;
}

async function writeRandom(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'w');
  for (let written = 0; written < bytes; written += 4 * 1024 * 1024) await fh.write(randomBytes(Math.min(4 * 1024 * 1024, bytes - written)));
  await fh.close();
}

async function makeSmallTree(base: string): Promise<Tree> {
  const dir = path.join(base, 'small', 'dags');
  const rand = prng(1);
  let bytes = 0;
  const files = SMALL_FILES;
  for (let d = 0; d < 200; d++) {
    const sub = path.join(dir, `team_${d}`);
    await mkdir(sub, { recursive: true });
    await Promise.all(
      Array.from({ length: files / 200 }, async (_, i) => {
        const size = 2048 + Math.floor(rand() * 6144);
        bytes += size;
        await writeFile(path.join(sub, `dag_${i}.py`), textLike(size, rand));
      }),
    );
  }
  return { name: `small: ${files.toLocaleString('en')} x 2-8 KB`, dir, files, bytes };
}

async function makeLargeTree(base: string): Promise<Tree> {
  const dir = path.join(base, 'large', 'dags');
  await mkdir(dir, { recursive: true });
  const perFile = 50 * 1024 * 1024;
  for (let f = 0; f < 4; f++) await writeRandom(path.join(dir, `blob_${f}.bin`), perFile);
  await writeFile(path.join(dir, 'dag.py'), 'from airflow import DAG\n');
  return { name: 'large: 4 x 50 MB random', dir, files: 5, bytes: 4 * perFile + 24 };
}

/** Writes files under `dir` (creating folders) and counts what it wrote. */
function treeWriter(dir: string) {
  const tree = {
    files: 0,
    bytes: 0,
    /** Count a file written by other means. */
    count(bytes: number) {
      tree.files++;
      tree.bytes += bytes;
    },
    async put(rel: string, content: Buffer) {
      const file = path.join(dir, rel);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, content);
      tree.count(content.length);
    },
  };
  return tree;
}

/**
 * A DAG repository with data files: 40 team folders of DAGs, helpers, SQL, YAML and docs
 * (mostly 1-16 KB, a few up to 40 KB), a shared `include/` with CSV/JSON extracts and parquet
 * parts, and a `models/` folder of pickled models (parquet and pickles as incompressible bytes).
 * 2,637 files, ~209 MiB: ~27 MiB text, ~65 MiB compressible data, ~117 MiB incompressible.
 */
async function makeMixedTree(base: string): Promise<Tree> {
  const dir = path.join(base, 'mixed', 'dags');
  const rand = prng(7);
  const tree = treeWriter(dir);
  const put = tree.put;
  const exts = ['py', 'py', 'py', 'py', 'sql', 'yaml', 'md'];
  for (let t = 0; t < 40; t++) {
    for (let i = 0; i < 65; i++) {
      // Mostly small modules, one in ten 16-40 KB.
      const size = rand() < 0.9 ? 1024 + Math.floor(rand() * 15 * 1024) : 16 * 1024 + Math.floor(rand() * 24 * 1024);
      const ext = exts[Math.floor(rand() * exts.length)]!;
      await put(`team_${t}/${i % 3 === 0 ? 'sql/' : i % 5 === 0 ? 'utils/' : ''}file_${i}.${ext}`, textLike(size, rand));
    }
  }
  await put('.airflowignore', Buffer.from('*.tmp\n'));
  for (let i = 0; i < 12; i++) await put(`include/extracts/extract_${i}.csv`, csvLike(4 * 1024 * 1024 + Math.floor(rand() * 2 * 1024 * 1024), rand));
  for (let i = 0; i < 4; i++) await put(`include/extracts/extract_${i}.json`, Buffer.from(JSON.stringify(csvLike(1024 * 1024, rand).toString().split('\n').map((l) => l.split(',')))));
  for (let i = 0; i < 8; i++) {
    const file = path.join(dir, 'models', `model_${i}.pkl`);
    await mkdir(path.dirname(file), { recursive: true });
    const size = 8 * 1024 * 1024 + Math.floor(rand() * 4 * 1024 * 1024);
    await writeRandom(file, size);
    tree.count(size);
  }
  for (let i = 0; i < 12; i++) {
    const file = path.join(dir, 'include', 'parquet', `part_${i}.parquet`);
    await mkdir(path.dirname(file), { recursive: true });
    const size = 2 * 1024 * 1024 + Math.floor(rand() * 2 * 1024 * 1024);
    await writeRandom(file, size);
    tree.count(size);
  }
  return { name: `mixed: ${tree.files.toLocaleString('en')} files`, dir, files: tree.files, bytes: tree.bytes };
}

/**
 * A DAG repository whose `.airflowignore` hides helper packages from the DAG parser while every
 * DAG imports from them (the case the hidden-import guard exists for): 100 team folders of 100
 * DAG files (1-3 KB, Python-like text after their imports), plus `helpers/` and `common/`.
 */
async function makeIgnoredTree(base: string): Promise<Tree> {
  const dir = path.join(base, 'ignored', 'dags');
  const rand = prng(3);
  const tree = treeWriter(dir);
  const put = tree.put;
  await put('.airflowignore', Buffer.from('helpers/\ncommon/\n'));
  await put('helpers/__init__.py', Buffer.from(''));
  await put('common/__init__.py', Buffer.from(''));
  for (let h = 0; h < 20; h++) await put(`helpers/team_${h}.py`, Buffer.from(`from common.util_${h % 5} import x\n`));
  for (let u = 0; u < 5; u++) await put(`common/util_${u}.py`, Buffer.from('x = 1\n'));
  for (let t = 0; t < 100; t++) {
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const head = `from airflow import DAG\nimport os\nfrom helpers.team_${t % 20} import build\nfrom common import util_${i % 5}\n`;
        await put(`team_${t}/dag_${i}.py`, Buffer.concat([Buffer.from(head), textLike(1024 + Math.floor(rand() * 2048), rand)]));
      }),
    );
  }
  return { name: `ignored: ${tree.files.toLocaleString('en')} files, guard on`, dir, files: tree.files, bytes: tree.bytes, guard: true };
}

const GENERATORS: Record<string, (base: string) => Promise<Tree>> = { small: makeSmallTree, large: makeLargeTree, mixed: makeMixedTree, ignored: makeIgnoredTree };

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Packer {
  name: string;
  run(tree: Tree, out: string): Promise<Measure>;
}

/** A tar-based packer writing `out/<file>`: its size is read back, then it is removed. */
function tarPacker(name: string, file: string, flags: string[]): Packer {
  return {
    name,
    async run(tree, out) {
      const target = path.join(out, file);
      const m = await measure('tar', [...flags, target, '-C', path.dirname(tree.dir), 'dags']);
      m.outBytes = (await stat(target)).size;
      await rm(target);
      return m;
    },
  };
}

/** The command line that runs this file: through tsx, or its esbuild bundle (made by {@link main}). */
let selfCommand = ['--import', 'tsx', SELF];
/** The same for {@link COMPARE}'s bench/bundle.ts. */
let compareCommand: string[] = [];

const PACKERS: Packer[] = [
  { name: 'createBundle', run: (tree, out) => measure(process.execPath, [...selfCommand, '--child', tree.dir, out, ...(tree.guard ? ['--guard'] : [])], path.dirname(SELF)) },
  tarPacker('tar pigz -p 2', 'pigz.tar.gz', ['-I', `${PIGZ} -p 2`, '-cf']),
  tarPacker('tar -czf', 'tar.tar.gz', ['-czf']),
  ...(COMPARE ? [{ name: `createBundle of ${path.basename(COMPARE)}`, run: (tree: Tree, out: string) => measure(process.execPath, [...compareCommand, '--child', tree.dir, out, ...(tree.guard ? ['--guard'] : [])], path.dirname(SELF)) }] : []),
];

async function main(): Promise<void> {
  if (!existsSync(TIME)) throw new Error(`${TIME} is required (apt-get install time)`);
  if (!existsSync(PIGZ)) throw new Error(`${PIGZ} is required (apt-get install pigz)`);
  for (const t of TREES) if (!GENERATORS[t]) throw new Error(`unknown tree "${t}" in BENCH_TREES (known: ${Object.keys(GENERATORS).join(', ')})`);
  await execFileP('tar', ['--version']);
  const base = await mkdtemp(path.join(os.tmpdir(), 'astro-bundle-bench-'));
  const started = performance.now();
  const rows: string[][] = [];
  try {
    if (LOADER === 'bundled') {
      const bundled = path.join(base, 'bench-bundle.mjs');
      await execFileP(ESBUILD, [SELF, '--bundle', '--platform=node', '--format=esm', '--log-level=warning', `--outfile=${bundled}`]);
      selfCommand = [bundled];
    }
    if (COMPARE) {
      const compareSelf = path.join(COMPARE, 'bench', 'bundle.ts');
      if (LOADER === 'bundled') {
        const bundled = path.join(base, 'bench-compare.mjs');
        await execFileP(ESBUILD, [compareSelf, '--bundle', '--platform=node', '--format=esm', '--log-level=warning', `--outfile=${bundled}`]);
        compareCommand = [bundled];
      } else {
        compareCommand = ['--import', 'tsx', compareSelf];
      }
    }
    const baseline = await measure(process.execPath, [...selfCommand, '--baseline'], path.dirname(SELF));
    const genStart = performance.now();
    const trees: Tree[] = [];
    for (const t of TREES) trees.push(await GENERATORS[t]!(base));
    console.log(`generated trees in ${sec(performance.now() - genStart)} s under ${base}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const out = path.join(base, 'out');
    await mkdir(out);
    for (const tree of trees) {
      const runs = PACKERS.map(() => [] as Measure[]);
      for (let r = 0; r < RUNS; r++) for (const [i, p] of PACKERS.entries()) runs[i]!.push(await p.run(tree, out));
      const summary = runs.map((ms) => ({
        best: Math.min(...ms.map((m) => m.wallMs)),
        median: median(ms.map((m) => m.wallMs)),
        cpu: median(ms.map((m) => m.cpuMs)),
        inProcess: ms.some((m) => m.inProcessMs !== undefined) ? Math.min(...ms.map((m) => m.inProcessMs ?? Infinity)) : undefined,
        rss: Math.max(...ms.map((m) => m.maxRssKb)),
        out: ms[0]!.outBytes,
        sameOut: ms.every((m) => m.outBytes === ms[0]!.outBytes),
      }));
      const [, pigz, tarGz] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
      for (const [i, s] of summary.entries()) {
        rows.push([
          i === 0 ? tree.name : '',
          i === 0 ? mb(tree.bytes) : '',
          PACKERS[i]!.name,
          sec(s.best),
          s.inProcess !== undefined ? sec(s.inProcess) : '',
          sec(s.median),
          sec(s.cpu),
          (s.cpu / s.median).toFixed(2),
          i === 0 || i === 3 ? (s.best / pigz.best).toFixed(2) : '',
          i === 0 || i === 3 ? (s.best / tarGz.best).toFixed(2) : '',
          `${s.out}${s.sameOut ? '' : '*'}`,
          (s.out / pigz.out).toFixed(4),
          mb(s.rss * 1024),
        ]);
      }
    }
    rows.push([`node startup only (${LOADER})`, '', 'baseline', sec(baseline.wallMs), '', '', sec(baseline.cpuMs), '', '', '', '', '', mb(baseline.maxRssKb * 1024)]);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  const header = ['tree', 'MiB in', 'packer', 'best s', 'in-process s', 'median s', 'cpu s', 'cores', 'ours/pigz', 'ours/tar-czf', 'bytes out', 'size/pigz', 'peak RSS MiB'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  console.log(
    `\n${RUNS} runs per packer, alternating; ratios compare best wall times (of whole processes); in-process s is the best time of the createBundle call itself, without Node's start and module loading; cpu s (user+sys) and cores (cpu / wall) are medians; * = output size varied between runs.` +
      `\ncreateBundle runs ${LOADER === 'tsx' ? 'through tsx' : 'as an esbuild bundle (BENCH_LOADER=tsx for tsx)'}; total ${sec(performance.now() - started)} s on ${os.cpus().length} CPUs, node ${process.version}, load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  );
}

// Dispatch last: the helpers above must be initialised before top-level await runs them.
if (process.argv[2] === '--child') {
  await child(process.argv[3]!, process.argv[4]!, process.argv[5] === '--guard');
} else if (process.argv[2] === '--generate') {
  // For profiling by hand: `node --import tsx bench/bundle.ts --generate mixed /tmp/trees`.
  const tree = await GENERATORS[process.argv[3]!]!(process.argv[4]!);
  console.log(`${tree.name}: ${tree.files} files, ${mb(tree.bytes)} MiB in ${tree.dir}`);
} else if (process.argv[2] === '--baseline') {
  await import('../src/bundle/index.js');
  process.stdout.write(JSON.stringify({ inProcessMs: 0 }));
} else {
  await main();
}
