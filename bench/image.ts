/**
 * Image push benchmark: the SDK's native push against `skopeo copy` (from the same archive) and
 * `docker push` (from the daemon), same image, same local registry (distribution 2.8), in one run.
 *
 *   flock /tmp/astro-bench.lock node --import tsx bench/image.ts
 *   BENCH_LAYER_MB=50 BENCH_RUNS=1 node --import tsx bench/image.ts
 *
 * The image: 3 layers x BENCH_LAYER_MB (default 100) of random bytes (incompressible: gzip can only
 * store them) and one layer of text and Python files (/usr/lib/python3.x, ~55 MB, which deflates
 * to about a quarter), since real images are mixed.
 *
 * Measures
 * - cold push from the archive: SDK (no cache) vs `skopeo copy docker-archive:`, each into a new
 *   repository, BENCH_RUNS times alternating, each run on a new registry (best and median shown);
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
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LayerCache, pushImage, type PushImageOptions } from '../src/image/index.js';
import { identifyImage } from '../src/image/push-identify.js';
import { createFaultProxy, type FaultProxy } from '../src/testing/fault-proxy.js';
import { dockerCli, getTestDocker, removeImages } from '../test/helpers/docker.js';
import { registryRouteOf, startRegistry } from '../test/helpers/registry.js';

const run = promisify(execFile);
const LAYER_MB = Number(process.env.BENCH_LAYER_MB ?? 100);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
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
  const result = await pushImage(args.source, { repository: args.repository, tag: args.tag }, { chunkSizeBytes: NATIVE_CHUNK });
  const pushMs = performance.now() - t;
  console.log(JSON.stringify({ indexMs, pushMs, statuses: result.layers.map((l) => l.status) } satisfies ChildReport));
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

async function main(): Promise<void> {
  const benchStart = Date.now();
  await getTestDocker();
  const dir = await mkdtemp(join(tmpdir(), 'astro-bench-image-'));
  const registry = await startRegistry('none');
  const local = 'astro-bench/image:latest';
  const pushedTags: string[] = [local];
  const closers: Array<() => Promise<void>> = [];
  try {
    console.log(`building ${RANDOM_LAYERS} random layers x ${LAYER_MB} MB and a text layer...`);
    const { archive, textMb } = await makeArchive(dir);
    await dockerCli(['load', '-i', archive], 600_000);
    const direct = registry.host;

    const dockerPush = async (ref: string) => {
      pushedTags.push(ref);
      await dockerCli(['tag', local, ref]);
      await dockerCli(['push', ref], 600_000);
    };
    const skopeoCopy = (ref: string) =>
      run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${ref}`], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
    const native = (source: string, ref: string, extra: PushImageOptions = {}) => {
      const at = ref.lastIndexOf(':');
      return pushImage(source, { repository: ref.slice(0, at), tag: ref.slice(at + 1) }, { layerCache: new LayerCache(), chunkSizeBytes: NATIVE_CHUNK, ...extra });
    };

    // 1. Cold pushes, each into a new repository; the SDK never gets a cache here.
    console.log('cold pushes...');
    const cold = { archive: [] as number[], skopeo: [] as number[], daemon: [] as number[], docker: [] as number[] };
    let blobBytes = 0;
    for (let r = 0; r < RUNS; r++) {
      // Each run on a registry of its own: skopeo remembers the digests it made (its blob info
      // cache) and would mount them from the last run's repositories.
      const runRegistry = r === 0 ? registry : await startRegistry('none');
      if (r > 0) closers.push(() => runRegistry.stop());
      const host = runRegistry.host;
      cold.archive.push(
        await timed(async () => {
          const result = await native(archive, `${host}/bench/archive-${r}:v1`);
          blobBytes = result.layers.reduce((n, l) => n + l.size, 0);
        }),
      );
      cold.skopeo.push(await timed(() => skopeoCopy(`${host}/bench/skopeo-${r}:v1`)));
      cold.daemon.push(await timed(() => native(local, `${host}/bench/daemon-${r}:v1`)));
      if (r === 0) cold.docker.push(await timed(() => dockerPush(`${direct}/bench/docker-${r}:v1`)));
    }

    // 2. Warm: a new process with only the on-disk cache (filled by a cold push in another process).
    console.log('warm pushes (new processes, on-disk layer cache)...');
    const cacheHome = join(dir, 'xdg-cache');
    const warmRepo = `${direct}/bench/warm`;
    await inChild(cacheHome, { source: archive, repository: warmRepo, tag: 'cold' });
    const warmArchive = await inChild(cacheHome, { source: archive, repository: warmRepo, tag: 'warm' });
    const warmDaemonRepo = `${direct}/bench/warm-daemon`;
    await inChild(cacheHome, { source: local, repository: warmDaemonRepo, tag: 'cold' });
    const warmDaemon = await inChild(cacheHome, { source: local, repository: warmDaemonRepo, tag: 'warm' });
    const warmDocker = await timed(() => dockerPush(`${direct}/bench/docker-0:v1`));
    const warmSkopeo = await timed(() => skopeoCopy(`${direct}/bench/skopeo-0:v1`));

    // 3. A 20 MiB/s link behind a proxy answering 408 to requests running over 3 s.
    console.log(`throttled link (${mb(THROTTLE)} MiB/s, 408 after ${BUDGET_MS / 1000} s)...`);
    const budget = await createFaultProxy({ target: registry.url, route: registryRouteOf, throttleBytesPerSecond: THROTTLE, timeoutPolicy: { respond408AfterMs: BUDGET_MS } });
    closers.push(() => budget.close());
    const viaBudget = new URL(budget.url).host;
    const throttled: Record<string, { ok: boolean; ms: number; note: string }> = {};
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

    // 4. A reset mid-layer, counting what each tool sends until the image is in.
    console.log('push interrupted by a reset mid-layer...');
    const faultProxy: FaultProxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
    closers.push(() => faultProxy.close());
    const relay = await countingRelay(Number(new URL(faultProxy.url).port));
    closers.push(() => relay.close());
    const viaFault = `127.0.0.1:${relay.port}`;
    const faulty: Record<string, { up: number; runs: number }> = {};
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
      console.log(`| ${what} | ${s(best(ours))} (median ${s(median(ours))}) | ${peer} | ${s(best(theirs))} | ${(best(ours) / best(theirs)).toFixed(2)}x (median ${(median(ours) / median(theirs)).toFixed(2)}x) |`);
    row('cold, from the archive', cold.archive, 'skopeo copy docker-archive:', cold.skopeo);
    row('cold, from the daemon', cold.daemon, 'docker push', cold.docker);
    console.log(`| warm, archive, new process (push call) | ${s(warmArchive.pushMs)} | docker push / skopeo copy | ${s(warmDocker)} / ${s(warmSkopeo)} | ${(warmArchive.pushMs / warmDocker).toFixed(2)}x / ${(warmArchive.pushMs / warmSkopeo).toFixed(2)}x |`);
    console.log(`| warm, daemon, new process (push call) | ${s(warmDaemon.pushMs)} | docker push | ${s(warmDocker)} | ${(warmDaemon.pushMs / warmDocker).toFixed(2)}x |`);
    console.log('');
    console.log(
      `Warm archive push: index read alone ${warmArchive.indexMs.toFixed(0)} ms, push ${warmArchive.pushMs.toFixed(0)} ms (${(warmArchive.pushMs - warmArchive.indexMs).toFixed(0)} ms beyond the index), ` +
        `layers ${warmArchive.statuses.join(',')}; whole process incl. Node + tsx start ${s(warmArchive.processMs)}. ` +
        `Daemon: ${warmDaemon.statuses.join(',')}, process ${s(warmDaemon.processMs)}.`,
    );
    console.log('');
    console.log(`| ${mb(THROTTLE)} MiB/s link, 408 after ${BUDGET_MS / 1000} s | result | time |`);
    console.log('|---|---|---|');
    for (const tool of ['native', 'docker', 'skopeo'] as const) {
      const b = throttled[tool]!;
      console.log(`| ${tool} | ${b.ok ? 'pushed' : `failed: ${b.note}`} | ${(b.ms / 1000).toFixed(1)} s |`);
    }
    console.log('');
    console.log(`| reset ${mb(RESET_AT)} MB into the first layer | bytes up | more than the SDK's gzipped layers (${mb(pushedPayload)} MB) | runs |`);
    console.log('|---|---|---|---|');
    for (const tool of ['native', 'docker', 'skopeo'] as const) {
      const f = faulty[tool]!;
      console.log(`| ${tool} | ${mb(f.up)} MB | +${mb(f.up - pushedPayload)} MB | ${f.runs} |`);
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
