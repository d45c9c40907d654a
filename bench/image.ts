/**
 * Image push benchmark: the SDK's native push against `skopeo copy` (from the same archive) and
 * `docker push` (from the daemon), same image, same local registry (distribution 2.8), in one run.
 *
 *   flock /tmp/astro-bench.lock node --import tsx bench/image.ts
 *   BENCH_LAYER_MB=50 BENCH_RUNS=1 node --import tsx bench/image.ts
 *   BENCH_PARTS=cold BENCH_LEVELS=6,3 BENCH_RUNS=5 BENCH_ARCHIVE=/tmp/img.tar node --import tsx bench/image.ts
 *
 * Knobs: BENCH_PARTS (comma list of cold, runtime, daemon, warm, throttle, reset, rss; default all),
 * BENCH_LEVELS (gzip levels of the SDK's cold archive pushes, rotated with skopeo in each run;
 * default the SDK's default), BENCH_ARCHIVE (an archive path to reuse, kept afterwards; built there
 * when missing).
 *
 * The image: 3 layers x BENCH_LAYER_MB (default 100) of random bytes (incompressible: gzip can only
 * store them) and one layer of text and Python files (/usr/lib/python3.x, ~55 MB, which deflates
 * to about a quarter), since real images are mixed.
 *
 * Measures
 * - cold push from the archive: SDK (no cache) vs `skopeo copy docker-archive:`, each into a new
 *   repository, BENCH_RUNS times alternating, each run on a new registry (best and median shown);
 * - the same cold comparison on the tests' runtime image (Debian + python3 and pytest, one ~146 MB
 *   layer that gzip shrinks to a third, test/helpers/runtime-image.ts), saved to an archive: real
 *   images are mostly compressible, and there zlib's deflate speed decides;
 * - cold push from the daemon: SDK (daemon export, no cache) vs `docker push` (docker once: after
 *   its first push it knows the layers' digests and mounts them);
 * - warm push, every blob already in the repository: the SDK in a NEW process whose only help is
 *   the on-disk layer-digest cache (an empty $XDG_CACHE_HOME, filled by a cold push in another
 *   process), from the archive and from the daemon, vs `docker push` and `skopeo copy` again; next
 *   to it, the time the SDK takes to read the archive's index alone (tar index, manifest.json,
 *   config), so "warm - index" is what the push adds;
 * - a throttled link (20 MiB/s) behind a proxy that answers 408 to any request running over 3 s:
 *   which tools complete;
 * - bytes sent for a push interrupted by a connection reset ~50 MB into the first layer upload
 *   (skopeo and docker give up on the fault, so they are run a second time, as a user would).
 * Needs root, dockerd (scripts/start-dockerd.sh), docker-registry and skopeo. Cleans up its images,
 * registry and temp files.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { LayerCache, pushImage, type PushImageOptions } from '../src/image/index.js';
import { identifyImage } from '../src/image/push-identify.js';
import { createFaultProxy, type FaultProxy } from '../src/testing/fault-proxy.js';
import { dockerCli, getTestDocker, removeImages } from '../test/helpers/docker.js';
import { registryRouteOf, startRegistry } from '../test/helpers/registry.js';
import { getRuntimeImage } from '../test/helpers/runtime-image.js';

const run = promisify(execFile);
const LAYER_MB = Number(process.env.BENCH_LAYER_MB ?? 100);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const PARTS = new Set((process.env.BENCH_PARTS ?? 'cold,runtime,daemon,warm,throttle,reset,rss').split(',').map((p) => p.trim()));
/** Gzip levels of the SDK's cold archive pushes (undefined: the SDK's default). */
const LEVELS: Array<number | undefined> = process.env.BENCH_LEVELS ? process.env.BENCH_LEVELS.split(',').map(Number) : [undefined];
const KEEP_ARCHIVE = process.env.BENCH_ARCHIVE;
const COMPARE = process.env.BENCH_COMPARE ? resolve(process.env.BENCH_COMPARE) : undefined;
const RANDOM_LAYERS = 3;
const RESET_AT = Math.min(50, Math.floor(LAYER_MB / 2)) * 1024 * 1024;
const NATIVE_CHUNK = 16 * 1024 * 1024;
const THROTTLE = 20 * 1024 * 1024;
const BUDGET_MS = 3000;
const SELF = fileURLToPath(import.meta.url);

/** A TCP relay counting every byte both ways (headers and bodies). */
async function countingRelay(targetPort: number): Promise<{ port: number; up: number; reset(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const stats = { up: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d: Buffer) => (stats.up += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    get up() {
      return stats.up;
    },
    reset() {
      stats.up = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The text layer's files: the system's Python library (text and .pyc), else generated source. */
async function textFiles(dir: string): Promise<string> {
  const lib = (await readdir('/usr/lib').catch(() => [] as string[])).filter((n) => /^python3\.\d+$/.test(n)).sort().at(-1);
  if (lib && existsSync(join('/usr/lib', lib, 'os.py'))) return join('/usr/lib', lib);
  const out = join(dir, 'text');
  await mkdir(out, { recursive: true });
  for (let f = 0; f < 2000; f++) {
    const body = Array.from({ length: 400 }, (_, i) => `def handler_${f}_${i}(event, context):\n    return {"status": ${i}, "file": ${f}}\n`).join('');
    await writeFile(join(out, `mod${f}.py`), body);
  }
  return out;
}

/** Write a `docker save` archive (random layers, then the text layer) without holding layers in memory. */
async function makeArchive(dir: string): Promise<{ archive: string; textMb: number }> {
  const layout = join(dir, 'layout');
  await mkdir(layout, { recursive: true });
  const diffIds: string[] = [];
  const layerPaths: string[] = [];
  let textMb = 0;
  for (let i = 0; i <= RANDOM_LAYERS; i++) {
    let src: string;
    if (i < RANDOM_LAYERS) {
      src = join(dir, `files${i}`);
      await mkdir(src, { recursive: true });
      const out = createWriteStream(join(src, `blob${i}.bin`));
      for (let m = 0; m < LAYER_MB; m++) out.write(randomBytes(1024 * 1024));
      await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    } else {
      src = await textFiles(dir);
    }
    const id = createHash('sha256').update(`layer${i}${Date.now()}`).digest('hex');
    await mkdir(join(layout, id));
    const layerTar = join(layout, id, 'layer.tar');
    await run('tar', ['--format=posix', '--sort=name', '--mtime=2024-01-01', '--owner=0', '--group=0', '--numeric-owner', '-cf', layerTar, '-C', src, '.']);
    const { stdout } = await run('sha256sum', [layerTar]);
    diffIds.push(`sha256:${stdout.split(' ')[0]}`);
    layerPaths.push(`${id}/layer.tar`);
    if (i === RANDOM_LAYERS) textMb = Number((await run('stat', ['-c', '%s', layerTar])).stdout) / 1024 / 1024;
    if (src.startsWith(dir)) await rm(src, { recursive: true });
  }
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Labels: { 'io.astronomer.docker.runtime.version': '3.1-5' } },
    rootfs: { type: 'layers', diff_ids: diffIds },
  });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  await writeFile(join(layout, configName), config);
  await writeFile(join(layout, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: ['astro-bench/image:latest'], Layers: layerPaths }]));
  const archive = join(dir, 'image.tar');
  await run('tar', ['-cf', archive, '-C', layout, '.']);
  await rm(layout, { recursive: true });
  return { archive, textMb };
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** What a child process reports: its index read, its push, and the whole process. */
interface ChildReport {
  indexMs: number;
  pushMs: number;
  statuses: string[];
  /** Peak RSS of the child process, in bytes. */
  maxRss: number;
  /** CPU time (user + system) of the child's push, in ms. */
  cpuMs: number;
}

/**
 * Child mode (`bench/image.ts child <json>`): one push in a fresh process, so only what is on disk
 * (the layer-digest cache under $XDG_CACHE_HOME) can help it. Prints a {@link ChildReport}.
 */
async function child(args: { source: string; repository: string; tag: string }): Promise<void> {
  let indexMs = 0;
  if (existsSync(args.source)) {
    const t = performance.now();
    const id = await identifyImage(args.source, {}, new AbortController().signal);
    indexMs = performance.now() - t;
    if (id.kind === 'archive') await id.archive.close();
  }
  const t = performance.now();
  const cpu = process.cpuUsage();
  const result = await pushImage(args.source, { repository: args.repository, tag: args.tag }, { chunkSizeBytes: NATIVE_CHUNK });
  const pushMs = performance.now() - t;
  const used = process.cpuUsage(cpu);
  const maxRss = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ indexMs, pushMs, statuses: result.layers.map((l) => l.status), maxRss, cpuMs: (used.user + used.system) / 1000 } satisfies ChildReport));
}

async function inChild(cacheHome: string, args: { source: string; repository: string; tag: string }): Promise<ChildReport & { processMs: number }> {
  const t = performance.now();
  const { stdout } = await run(process.execPath, ['--import', 'tsx', SELF, 'child', JSON.stringify(args)], {
    env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    timeout: 600_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildReport;
  return { ...report, processMs: performance.now() - t };
}

/** Sizes of the layers of `repo:tag` as the registry holds them (manifest order). */
async function layerSizes(host: string, repo: string, tag: string): Promise<number[]> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  const manifest = (await res.json()) as { layers: Array<{ size: number }> };
  return manifest.layers.map((l) => l.size);
}

/** Run `cmd` under /usr/bin/time, returning its CPU time (user + system), in ms. */
async function cpuOf(cmd: string, args: string[]): Promise<number> {
  const { stderr } = await run('/usr/bin/time', ['-f', 'cpu %U %S', cmd, ...args], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
  return m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN;
}

async function main(): Promise<void> {
  const benchStart = Date.now();
  await getTestDocker();
  const dir = await mkdtemp(join(tmpdir(), 'astro-bench-image-'));
  const registry = await startRegistry('none');
  const local = 'astro-bench/image:latest';
  const pushedTags: string[] = [local];
  const closers: Array<() => Promise<void>> = [];
  try {
    let archive: string;
    let textMb: number;
    if (KEEP_ARCHIVE && existsSync(KEEP_ARCHIVE)) {
      archive = KEEP_ARCHIVE;
      const id = await identifyImage(archive, {}, new AbortController().signal);
      if (id.kind !== 'archive') throw new Error(`${archive} is not an archive`);
      textMb = (id.image.layers.at(-1) ? id.archive.data(id.image.layers.at(-1)!.member).size : 0) / 1024 / 1024;
      await id.archive.close();
      console.log(`reusing ${archive}`);
    } else {
      console.log(`building ${RANDOM_LAYERS} random layers x ${LAYER_MB} MB and a text layer...`);
      ({ archive, textMb } = await makeArchive(dir));
      if (KEEP_ARCHIVE) {
        await run('mv', [archive, KEEP_ARCHIVE]);
        archive = KEEP_ARCHIVE;
      }
    }
    const needDaemon = PARTS.has('daemon') || PARTS.has('warm') || PARTS.has('throttle') || PARTS.has('reset');
    if (needDaemon) await dockerCli(['load', '-i', archive], 600_000);
    const direct = registry.host;

    const dockerPush = async (ref: string) => {
      pushedTags.push(ref);
      await dockerCli(['tag', local, ref]);
      await dockerCli(['push', ref], 600_000);
    };
    const skopeoArgs = (ref: string, from = archive) => ['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${from}`, `docker://${ref}`];
    const skopeoCopy = (ref: string) => run('skopeo', skopeoArgs(ref), { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
    /** `<registry>/<repository>:<tag>` as a push target. */
    const targetOf = (ref: string) => {
      const at = ref.lastIndexOf(':');
      return { repository: ref.slice(0, at), tag: ref.slice(at + 1) };
    };
    const native = (source: string, ref: string, extra: PushImageOptions = {}) =>
      pushImage(source, targetOf(ref), { layerCache: new LayerCache(), chunkSizeBytes: NATIVE_CHUNK, ...extra });
    // The other checkout's push (BENCH_COMPARE), with its own LayerCache class.
    const other = COMPARE ? ((await import(pathToFileURL(join(COMPARE, 'src/image/index.ts')).href)) as typeof import('../src/image/index.js')) : undefined;
    const variants: Array<{ name: string; push: (ref: string, from: string) => Promise<{ layers: Array<{ size: number }> }> }> = LEVELS.map((level) => ({
      name: level === undefined ? 'SDK' : `SDK level ${level}`,
      push: (ref: string, from: string) => native(from, ref, level === undefined ? {} : { gzipLevel: level }),
    }));
    if (other) {
      variants.push({
        name: `${COMPARE}`,
        push: (ref: string, from: string) => other.pushImage(from, targetOf(ref), { layerCache: new other.LayerCache(), chunkSizeBytes: NATIVE_CHUNK }),
      });
    }
    let blobBytes = 0;
    type ColdArchiveResults = { archive: number[][]; archiveCpu: number[][]; archiveSizes: number[][]; skopeo: number[]; skopeoCpu: number[]; skopeoSizes: number[] };
    const coldArchiveResults = (): ColdArchiveResults => ({ archive: variants.map(() => []), archiveCpu: variants.map(() => []), archiveSizes: variants.map(() => []), skopeo: [], skopeoCpu: [], skopeoSizes: [] });
    /**
     * Run `r` of the cold comparison from the archive at `from` into the registry at `host`: each
     * SDK variant and skopeo once, into new repositories named after `name`.
     */
    const coldArchiveRound = async (from: string, name: string, host: string, r: number, out: ColdArchiveResults): Promise<void> => {
      // Every participant (each SDK variant, skopeo) takes each place in the order in turn, in
      // both directions (so none always follows the same one), each after a `sync`: the push that
      // follows another's 330 MB of registry writes otherwise pays for their writeback (SDK
      // against an identical copy of itself: 0.4 s more CPU, always in that place).
      const sdk = async (i: number) => {
        const cpu = process.cpuUsage();
        out.archive[i]!.push(
          await timed(async () => {
            const result = await variants[i]!.push(`${host}/bench/${name}-${r}-${i}:v1`, from);
            if (from === archive) blobBytes = result.layers.reduce((n, l) => n + l.size, 0);
            out.archiveSizes[i] = result.layers.map((l) => l.size);
          }),
        );
        const used = process.cpuUsage(cpu);
        out.archiveCpu[i]!.push((used.user + used.system) / 1000);
      };
      const skopeo = async () => {
        // The main archive's skopeo-0 is what the warm part pushes again.
        const repository = `bench/${from === archive ? '' : `${name}-`}skopeo-${r}`;
        let cpuMs = NaN;
        out.skopeo.push(await timed(async () => (cpuMs = await cpuOf('skopeo', skopeoArgs(`${host}/${repository}:v1`, from)))));
        out.skopeoCpu.push(cpuMs);
        out.skopeoSizes = await layerSizes(host, repository, 'v1');
      };
      const participants = [...variants.map((_, i) => () => sdk(i)), skopeo];
      const n = participants.length;
      for (let k = 0; k < n; k++) {
        await run('sync');
        await participants[Math.floor(r / 2) % 2 === 0 ? (k + r) % n : (2 * n - 1 - k + r) % n]!();
      }
    };

    // 1. Cold pushes, each into a new repository; the SDK never gets a cache here.
    const cold = { ...coldArchiveResults(), daemon: [] as number[], docker: [] as number[] };
    if (PARTS.has('cold') || PARTS.has('daemon')) console.log('cold pushes...');
    for (let r = 0; r < RUNS && (PARTS.has('cold') || PARTS.has('daemon')); r++) {
      // Each run on a registry of its own: skopeo remembers the digests it made (its blob info
      // cache) and would mount them from the last run's repositories.
      const runRegistry = r === 0 ? registry : await startRegistry('none');
      if (r > 0) closers.push(() => runRegistry.stop());
      const host = runRegistry.host;
      if (PARTS.has('cold')) await coldArchiveRound(archive, 'archive', host, r, cold);
      if (PARTS.has('daemon')) {
        cold.daemon.push(await timed(() => native(local, `${host}/bench/daemon-${r}:v1`)));
        if (r === 0) cold.docker.push(await timed(() => dockerPush(`${direct}/bench/docker-${r}:v1`)));
      }
    }

    // 1b. The same cold comparison on the tests' runtime image: Debian + python3 and pytest in one
    // layer that gzip shrinks to a third, as real images do, where the image above is mostly random.
    const runtimeCold = coldArchiveResults();
    let runtimeMb = 0;
    if (PARTS.has('runtime')) {
      console.log('cold pushes of the runtime image...');
      const runtimeArchive = join(dir, 'runtime.tar');
      await dockerCli(['save', '-o', runtimeArchive, await getRuntimeImage()], 600_000);
      runtimeMb = (await stat(runtimeArchive)).size / 1024 / 1024;
      for (let r = 0; r < RUNS; r++) {
        const runRegistry = await startRegistry('none');
        try {
          await coldArchiveRound(runtimeArchive, 'runtime', runRegistry.host, r, runtimeCold);
        } finally {
          await runRegistry.stop();
        }
      }
    }

    // 2. Warm: a new process with only the on-disk cache (filled by a cold push in another process).
    let warm: { archive: ChildReport & { processMs: number }; daemon: ChildReport & { processMs: number }; docker: number; skopeo: number } | undefined;
    if (PARTS.has('warm')) {
      console.log('warm pushes (new processes, on-disk layer cache)...');
      const cacheHome = join(dir, 'xdg-cache');
      const warmRepo = `${direct}/bench/warm`;
      await inChild(cacheHome, { source: archive, repository: warmRepo, tag: 'cold' });
      const warmArchive = await inChild(cacheHome, { source: archive, repository: warmRepo, tag: 'warm' });
      const warmDaemonRepo = `${direct}/bench/warm-daemon`;
      await inChild(cacheHome, { source: local, repository: warmDaemonRepo, tag: 'cold' });
      const warmDaemon = await inChild(cacheHome, { source: local, repository: warmDaemonRepo, tag: 'warm' });
      if (!PARTS.has('daemon')) await dockerPush(`${direct}/bench/docker-0:v1`);
      const warmDocker = await timed(() => dockerPush(`${direct}/bench/docker-0:v1`));
      if (!PARTS.has('cold')) await skopeoCopy(`${direct}/bench/skopeo-0:v1`);
      const warmSkopeo = await timed(() => skopeoCopy(`${direct}/bench/skopeo-0:v1`));
      warm = { archive: warmArchive, daemon: warmDaemon, docker: warmDocker, skopeo: warmSkopeo };
    }

    // 2b. Peak RSS of a cold archive push in a process of its own (empty layer cache).
    const rss: Array<ChildReport & { processMs: number }> = [];
    if (PARTS.has('rss')) {
      console.log('peak RSS of cold archive pushes (new processes)...');
      for (let r = 0; r < Math.min(RUNS, 3); r++) rss.push(await inChild(join(dir, `rss-cache-${r}`), { source: archive, repository: `${direct}/bench/rss-${r}`, tag: 'v1' }));
    }

    // 3. A 20 MiB/s link behind a proxy answering 408 to requests running over 3 s.
    const throttled: Record<string, { ok: boolean; ms: number; note: string }> = {};
    if (PARTS.has('throttle')) {
      console.log(`throttled link (${mb(THROTTLE)} MiB/s, 408 after ${BUDGET_MS / 1000} s)...`);
      const budget = await createFaultProxy({ target: registry.url, route: registryRouteOf, throttleBytesPerSecond: THROTTLE, timeoutPolicy: { respond408AfterMs: BUDGET_MS } });
      closers.push(() => budget.close());
      const viaBudget = new URL(budget.url).host;
      for (const tool of ['native', 'docker', 'skopeo'] as const) {
        const ref = `${viaBudget}/bench/${tool}-budget:v1`;
        const t = performance.now();
        let note = '';
        try {
          if (tool === 'native') await native(archive, ref);
          else if (tool === 'docker') await dockerPush(ref);
          else await skopeoCopy(ref);
        } catch (err) {
          note = String((err as { stderr?: string }).stderr || (err as Error).message).split('\n').filter(Boolean).at(-1)?.slice(0, 70) ?? '';
        }
        throttled[tool] = { ok: !note, ms: performance.now() - t, note };
      }
    }

    // 4. A reset mid-layer, counting what each tool sends until the image is in.
    const faulty: Record<string, { up: number; runs: number }> = {};
    if (PARTS.has('reset')) {
      console.log('push interrupted by a reset mid-layer...');
      if (!blobBytes) blobBytes = (await native(archive, `${direct}/bench/sizes:v1`)).layers.reduce((n, l) => n + l.size, 0);
      const faultProxy: FaultProxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
      closers.push(() => faultProxy.close());
      const relay = await countingRelay(Number(new URL(faultProxy.url).port));
      closers.push(() => relay.close());
      const viaFault = `127.0.0.1:${relay.port}`;
      for (const tool of ['native', 'docker', 'skopeo'] as const) {
        faultProxy.faults.clear();
        // Native PATCHes carry 16 MiB each; the others send a layer in one PATCH.
        faultProxy.faults.add(
          tool === 'native'
            ? { route: 'registry.patch', nth: Math.floor(RESET_AT / NATIVE_CHUNK) + 1, action: { kind: 'reset', afterBodyBytes: RESET_AT % NATIVE_CHUNK || 1024 } }
            : { route: 'registry.patch', nth: 1, action: { kind: 'reset', afterBodyBytes: RESET_AT } },
        );
        relay.reset();
        const ref = `${viaFault}/bench/${tool}-fault:v1`;
        let runs = 0;
        for (;;) {
          runs += 1;
          try {
            if (tool === 'native') await native(archive, ref, { retry: { initialDelayMs: 100, maxDelayMs: 500 } });
            else if (tool === 'docker') await dockerPush(ref);
            else await skopeoCopy(ref);
            break;
          } catch (err) {
            if (runs >= 3) throw err;
          }
        }
        faulty[tool] = { up: relay.up, runs };
      }
    }

    const payload = (RANDOM_LAYERS * LAYER_MB + textMb) * 1024 * 1024;
    // What a clean push sends: the gzipped layers (the text layer shrinks, the random ones do not).
    const pushedPayload = blobBytes;
    const { stdout: load } = await run('cat', ['/proc/loadavg']);
    const best = (xs: number[]) => Math.min(...xs);
    console.log('');
    console.log(
      `Image: ${RANDOM_LAYERS} x ${LAYER_MB} MB random + ${textMb.toFixed(0)} MB text/Python layer (${mb(payload)} MB); registry: distribution 2.8 on loopback; ` +
        `${RUNS} cold run(s) each; load ${load.trim().split(' ').slice(0, 3).join(' ')}`,
    );
    console.log('');
    console.log('| push | SDK native | peer | peer time | ratio (SDK / peer) |');
    console.log('|---|---|---|---|---|');
    const row = (what: string, ours: number[], peer: string, theirs: number[]) =>
      console.log(`| ${what} | ${s(best(ours))} (median ${s(median(ours))}) | ${peer} | ${s(best(theirs))} (median ${s(median(theirs))}) | ${(best(ours) / best(theirs)).toFixed(2)}x (median ${(median(ours) / median(theirs)).toFixed(2)}x) |`);
    if (PARTS.has('cold')) {
      for (const [i, v] of variants.entries()) row(`cold, from the archive (${v.name})`, cold.archive[i]!, 'skopeo copy docker-archive:', cold.skopeo);
    }
    if (PARTS.has('runtime')) {
      for (const [i, v] of variants.entries()) row(`cold, runtime image from its archive (${v.name})`, runtimeCold.archive[i]!, 'skopeo copy docker-archive:', runtimeCold.skopeo);
    }
    if (PARTS.has('daemon')) row('cold, from the daemon', cold.daemon, 'docker push', cold.docker);
    if (warm) {
      console.log(`| warm, archive, new process (push call) | ${s(warm.archive.pushMs)} | docker push / skopeo copy | ${s(warm.docker)} / ${s(warm.skopeo)} | ${(warm.archive.pushMs / warm.docker).toFixed(2)}x / ${(warm.archive.pushMs / warm.skopeo).toFixed(2)}x |`);
      console.log(`| warm, daemon, new process (push call) | ${s(warm.daemon.pushMs)} | docker push | ${s(warm.docker)} | ${(warm.daemon.pushMs / warm.docker).toFixed(2)}x |`);
    }
    const cpuTable = (what: string, results: ColdArchiveResults) => {
      const sizes = (xs: number[]) => xs.map((n) => (n / 1024 / 1024).toFixed(2)).join(', ');
      console.log('');
      console.log(`| ${what} | CPU (user + sys), median | layer sizes (MB, manifest order) |`);
      console.log('|---|---|---|');
      for (const [i, v] of variants.entries()) console.log(`| ${v.name} | ${s(median(results.archiveCpu[i]!))} | ${sizes(results.archiveSizes[i]!)} |`);
      console.log(`| skopeo copy | ${s(median(results.skopeoCpu))} | ${sizes(results.skopeoSizes)} |`);
    };
    if (PARTS.has('cold')) cpuTable('cold archive push', cold);
    if (PARTS.has('runtime')) cpuTable(`cold push of the runtime image (${runtimeMb.toFixed(0)} MB archive)`, runtimeCold);
    if (warm) {
      console.log('');
      console.log(
        `Warm archive push: index read alone ${warm.archive.indexMs.toFixed(0)} ms, push ${warm.archive.pushMs.toFixed(0)} ms (${(warm.archive.pushMs - warm.archive.indexMs).toFixed(0)} ms beyond the index), ` +
          `layers ${warm.archive.statuses.join(',')}; whole process incl. Node + tsx start ${s(warm.archive.processMs)}. ` +
          `Daemon: ${warm.daemon.statuses.join(',')}, process ${s(warm.daemon.processMs)}.`,
      );
    }
    if (rss.length) {
      console.log('');
      console.log(`Cold archive push in a new process: peak RSS ${rss.map((c) => mb(c.maxRss)).join(', ')} MB; push ${rss.map((c) => s(c.pushMs)).join(', ')}; CPU ${rss.map((c) => s(c.cpuMs)).join(', ')}`);
    }
    if (PARTS.has('throttle')) {
      console.log('');
      console.log(`| ${mb(THROTTLE)} MiB/s link, 408 after ${BUDGET_MS / 1000} s | result | time |`);
      console.log('|---|---|---|');
      for (const tool of ['native', 'docker', 'skopeo'] as const) {
        const b = throttled[tool]!;
        console.log(`| ${tool} | ${b.ok ? 'pushed' : `failed: ${b.note}`} | ${(b.ms / 1000).toFixed(1)} s |`);
      }
    }
    if (PARTS.has('reset')) {
      console.log('');
      console.log(`| reset ${mb(RESET_AT)} MB into the first layer | bytes up | more than the SDK's gzipped layers (${mb(pushedPayload)} MB) | runs |`);
      console.log('|---|---|---|---|');
      for (const tool of ['native', 'docker', 'skopeo'] as const) {
        const f = faulty[tool]!;
        console.log(`| ${tool} | ${mb(f.up)} MB | +${mb(f.up - pushedPayload)} MB | ${f.runs} |`);
      }
    }
    console.log(`Total bench time ${((Date.now() - benchStart) / 1000).toFixed(0)} s`);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await registry.stop();
    await removeImages(...pushedTags);
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') {
  child(JSON.parse(process.argv[3]!) as { source: string; repository: string; tag: string }).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
