/**
 * Image push benchmark: the SDK's native push vs `docker push` (through the Engine API) vs
 * `skopeo copy`, same image, same local registry (distribution 2.8), in one run.
 *
 *   node --import tsx bench/image.ts            # 3 layers x 100 MB of random bytes
 *   BENCH_LAYER_MB=50 node --import tsx bench/image.ts
 *
 * Measures
 * - time of a first push on a clean loopback link (each tool into its own new repository);
 * - bytes on the wire (TCP, both directions, headers included) of a second push of the same image
 *   to the same repository, where every blob already exists;
 * - bytes on the wire of a push interrupted mid-layer by a connection reset (the fault proxy
 *   resets the connection ~50 MB into the first layer upload, without passing the broken request
 *   on), counting everything each tool sends until the image is in the registry (skopeo gives up
 *   on the fault, so it is run a second time, as a user would).
 * Needs root, dockerd (started by scripts/start-dockerd.sh), docker-registry and skopeo. Cleans up
 * its images, registry and temp files.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LayerCache, pushImage } from '../src/image/index.js';
import { createFaultProxy, type FaultProxy } from '../src/testing/fault-proxy.js';
import { dockerCli, getTestDocker, removeImages } from '../test/helpers/docker.js';
import { registryRouteOf, startRegistry } from '../test/helpers/registry.js';

const run = promisify(execFile);
const LAYER_MB = Number(process.env.BENCH_LAYER_MB ?? 100);
const LAYERS = 3;
const RESET_AT = Math.min(50, Math.floor(LAYER_MB / 2)) * 1024 * 1024;
const NATIVE_CHUNK = 16 * 1024 * 1024;

/** A TCP relay counting every byte both ways (headers and bodies). */
async function countingRelay(targetPort: number): Promise<{ port: number; up: number; down: number; reset(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const stats = { up: 0, down: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d: Buffer) => (stats.up += d.length));
    upstream.on('data', (d: Buffer) => (stats.down += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get up() {
      return stats.up;
    },
    get down() {
      return stats.down;
    },
    reset() {
      stats.up = 0;
      stats.down = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Write a `docker save` archive of 3 random layers without holding them in memory at once. */
async function makeArchive(dir: string): Promise<string> {
  const layout = join(dir, 'layout');
  await mkdir(layout, { recursive: true });
  const diffIds: string[] = [];
  const layerPaths: string[] = [];
  for (let i = 0; i < LAYERS; i++) {
    const files = join(dir, `files${i}`);
    await mkdir(files, { recursive: true });
    const out = createWriteStream(join(files, `blob${i}.bin`));
    for (let mb = 0; mb < LAYER_MB; mb++) out.write(randomBytes(1024 * 1024));
    await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    const id = createHash('sha256').update(`layer${i}${Date.now()}`).digest('hex');
    await mkdir(join(layout, id));
    const layerTar = join(layout, id, 'layer.tar');
    await run('tar', ['--format=posix', '--mtime=2024-01-01', '--owner=0', '--group=0', '--numeric-owner', '-cf', layerTar, '-C', files, '.']);
    const { stdout } = await run('sha256sum', [layerTar]);
    diffIds.push(`sha256:${stdout.split(' ')[0]}`);
    layerPaths.push(`${id}/layer.tar`);
    await rm(files, { recursive: true });
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
  return archive;
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const kb = (bytes: number) => (bytes / 1024).toFixed(1);

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

async function main(): Promise<void> {
  const benchStart = Date.now();
  const { host: dockerHost } = await getTestDocker();
  const dir = await mkdtemp(join(tmpdir(), 'astro-bench-image-'));
  const registry = await startRegistry('none');
  const relay = await countingRelay(registry.port);
  let faultProxy: FaultProxy | undefined;
  let faultRelay: Awaited<ReturnType<typeof countingRelay>> | undefined;
  const local = 'astro-bench/image:latest';
  const pushedTags: string[] = [local];
  try {
    console.log(`building ${LAYERS} layers x ${LAYER_MB} MB of random bytes...`);
    const archive = await makeArchive(dir);
    await dockerCli(['load', '-i', archive], 600_000);
    const direct = registry.host;
    const counted = `127.0.0.1:${relay.port}`;

    const dockerPush = async (ref: string) => {
      pushedTags.push(ref);
      await dockerCli(['tag', local, ref]);
      await dockerCli(['push', ref], 600_000);
    };
    const skopeoCopy = async (ref: string) =>
      run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--src-daemon-host', dockerHost, `docker-daemon:${local}`, `docker://${ref}`], {
        timeout: 600_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    const nativeCache = new LayerCache();
    const native = (ref: string, extra: Parameters<typeof pushImage>[2] = {}) => {
      const [repo, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
      return pushImage(local, { repository: repo, tag }, { layerCache: nativeCache, chunkSizeBytes: NATIVE_CHUNK, ...extra });
    };

    // 1. Clean first push, straight to the registry, each tool into a new repository.
    const clean: Record<string, number> = {};
    console.log('clean first push (direct)...');
    clean.native = (await timed(() => native(`${direct}/bench/native-clean:v1`, { layerCache: new LayerCache() }))).ms;
    clean.docker = (await timed(() => dockerPush(`${direct}/bench/docker-clean:v1`))).ms;
    clean.skopeo = (await timed(() => skopeoCopy(`${direct}/bench/skopeo-clean:v1`))).ms;
    clean.nativeArchive = (await timed(() => pushImage(archive, { repository: `${direct}/bench/native-archive`, tag: 'v1' }, { layerCache: false, chunkSizeBytes: NATIVE_CHUNK }))).ms;

    // 2. Through the counting relay: a first push, then the same push again (everything exists).
    console.log('first and second push through the byte counter...');
    const wire: Record<string, { first: [number, number]; second: [number, number]; secondMs: number }> = {};
    for (const tool of ['native', 'docker', 'skopeo'] as const) {
      const ref = `${counted}/bench/${tool}-again:v1`;
      const go = async (): Promise<void> => {
        if (tool === 'native') await native(ref);
        else if (tool === 'docker') await dockerPush(ref);
        else await skopeoCopy(ref);
      };
      relay.reset();
      await go();
      const first: [number, number] = [relay.up, relay.down];
      relay.reset();
      const second = await timed(go);
      wire[tool] = { first, second: [relay.up, relay.down], secondMs: second.ms };
    }

    // 3. Interrupted: a reset ~50 MB into the first layer's upload, fresh repositories.
    console.log('push interrupted by a reset mid-layer...');
    faultProxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
    faultRelay = await countingRelay(Number(new URL(faultProxy.url).port));
    const viaFault = `127.0.0.1:${faultRelay.port}`;
    const faulty: Record<string, { up: number; runs: number; ms: number }> = {};
    for (const tool of ['native', 'docker', 'skopeo'] as const) {
      faultProxy.faults.clear();
      // Native PATCHes carry 16 MiB each; the others send a layer in one PATCH.
      const rule =
        tool === 'native'
          ? { route: 'registry.patch', nth: Math.floor(RESET_AT / NATIVE_CHUNK) + 1, action: { kind: 'reset' as const, afterBodyBytes: RESET_AT % NATIVE_CHUNK || 1024 } }
          : { route: 'registry.patch', nth: 1, action: { kind: 'reset' as const, afterBodyBytes: RESET_AT } };
      faultProxy.faults.add(rule);
      faultRelay.reset();
      const ref = `${viaFault}/bench/${tool}-fault:v1`;
      let runs = 0;
      const t = performance.now();
      for (;;) {
        runs += 1;
        try {
          if (tool === 'native') await native(ref, { layerCache: new LayerCache(), retry: { initialDelayMs: 100, maxDelayMs: 500 } });
          else if (tool === 'docker') await dockerPush(ref);
          else await skopeoCopy(ref);
          break;
        } catch (err) {
          if (runs >= 3) throw err;
        }
      }
      faulty[tool] = { up: faultRelay.up, runs, ms: performance.now() - t };
    }

    // 4. A proxy with a request time budget on a slower link (what sends 408s to Astro users):
    //    40 MB/s, and any request still running after 1.5 s is answered 408 and cut.
    console.log('push through a proxy that cuts requests running over 1.5 s (40 MB/s link)...');
    const budget = await createFaultProxy({
      target: registry.url,
      route: registryRouteOf,
      throttleBytesPerSecond: 40 * 1024 * 1024,
      timeoutPolicy: { respond408AfterMs: 1500 },
    });
    const budgetRelay = await countingRelay(Number(new URL(budget.url).port));
    const budgeted: Record<string, { ok: boolean; up: number; ms: number; note: string }> = {};
    try {
      const viaBudget = `127.0.0.1:${budgetRelay.port}`;
      for (const tool of ['native', 'docker', 'skopeo'] as const) {
        budgetRelay.reset();
        const ref = `${viaBudget}/bench/${tool}-budget:v1`;
        const t = performance.now();
        let ok = true;
        let note = '';
        try {
          if (tool === 'native') await native(ref, { layerCache: new LayerCache() });
          else if (tool === 'docker') await dockerPush(ref);
          else await skopeoCopy(ref);
        } catch (err) {
          ok = false;
          note = String((err as { stderr?: string }).stderr ?? (err as Error).message).split('\n').filter(Boolean).at(-1)?.slice(0, 80) ?? '';
        }
        budgeted[tool] = { ok, up: budgetRelay.up, ms: performance.now() - t, note };
      }
    } finally {
      await budgetRelay.close();
      await budget.close();
    }

    const payload = LAYERS * LAYER_MB * 1024 * 1024;
    console.log('');
    console.log(`Image: ${LAYERS} layers x ${LAYER_MB} MB random (incompressible), registry: distribution 2.8 on loopback, 2 cores, dockerd 20.10 (vfs)`);
    console.log('');
    console.log('| tool | clean first push | ratio vs docker push | 2nd push up / down (bytes) | 2nd push time | reset mid-layer: bytes up | re-sent vs payload | runs |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const tool of ['native', 'docker', 'skopeo'] as const) {
      const w = wire[tool]!;
      const f = faulty[tool]!;
      console.log(
        `| ${tool === 'native' ? 'SDK native (daemon export)' : tool === 'docker' ? 'docker push (daemon)' : 'skopeo copy (docker-daemon:)'} | ` +
          `${(clean[tool]! / 1000).toFixed(2)} s | ${(clean[tool]! / clean.docker!).toFixed(2)} | ${w.second[0]} / ${w.second[1]} | ${(w.secondMs / 1000).toFixed(2)} s | ` +
          `${mb(f.up)} MB | +${mb(f.up - payload)} MB | ${f.runs} |`,
      );
    }
    console.log(`| SDK native (archive file) | ${(clean.nativeArchive! / 1000).toFixed(2)} s | ${(clean.nativeArchive! / clean.docker!).toFixed(2)} | | | | | |`);
    console.log('');
    console.log(
      `First push through the counter (up/down): ${(['native', 'docker', 'skopeo'] as const).map((t) => `${t} ${mb(wire[t]!.first[0])} MB / ${kb(wire[t]!.first[1])} KB`).join('; ')}`,
    );
    console.log(`Reset injected ${mb(RESET_AT)} MB into the first layer upload; the proxy does not pass the broken request on.`);
    console.log('');
    console.log('Proxy with a 1.5 s request budget (408 + cut), 40 MB/s:');
    console.log('| tool | result | time | bytes up |');
    console.log('|---|---|---|---|');
    for (const tool of ['native', 'docker', 'skopeo'] as const) {
      const b = budgeted[tool]!;
      console.log(`| ${tool} | ${b.ok ? 'pushed' : `failed: ${b.note}`} | ${(b.ms / 1000).toFixed(1)} s | ${mb(b.up)} MB |`);
    }
    console.log(`Total bench time ${((Date.now() - benchStart) / 1000).toFixed(0)} s`);
  } finally {
    await faultRelay?.close();
    await faultProxy?.close();
    await relay.close();
    await registry.stop();
    await removeImages(...pushedTags);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
