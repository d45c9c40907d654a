/**
 * A real Docker daemon for tests: the one at DOCKER_HOST when it answers, else the private one
 * that scripts/start-dockerd.sh starts (vfs storage, unix socket under /tmp). When neither works
 * the tests fail with the reason: image tests never skip silently.
 *
 * With `ASTRO_SDK_TEST_DOCKER_STORE=containerd` (the `containerd-store` project of
 * vitest.config.ts) it is the private daemon with Docker's containerd image store instead, which
 * the same script starts; DOCKER_HOST is not looked at then.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, appendFile, chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const START_SCRIPT = resolve(here, '../../scripts/start-dockerd.sh');

/** Label that marks images created by the tests, so they can be cleaned up. */
export const TEST_LABEL = 'io.astro-deploy-sdk.test';

function clientFor(host: string): Dockerode {
  if (!host.startsWith('unix://')) throw new Error(`test helper supports unix:// DOCKER_HOST only, got ${host}`);
  return new Dockerode({ socketPath: host.slice('unix://'.length) });
}

async function answers(docker: Dockerode): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

let cached: Promise<{ docker: Dockerode; host: string }> | undefined;

/** The image store of the daemon the tests use (see the module comment). */
export type TestDockerStore = 'classic' | 'containerd';

/** The store this test process is set to use. */
export function testDockerStore(): TestDockerStore {
  return process.env.ASTRO_SDK_TEST_DOCKER_STORE === 'containerd' ? 'containerd' : 'classic';
}

/** The daemon the tests would use, when one already answers: `DOCKER_HOST`'s, else the private one (starts nothing). */
export async function runningTestDocker(store: TestDockerStore = testDockerStore()): Promise<{ docker: Dockerode; host: string } | undefined> {
  if (store === 'containerd') {
    const host = 'unix:///tmp/astro-sdk-docker-containerd/docker.sock';
    const docker = clientFor(host);
    return (await answers(docker)) ? { docker, host } : undefined;
  }
  const privateHost = `unix://${process.env.ASTRO_SDK_DOCKER_DIR ?? '/tmp/astro-sdk-docker'}/docker.sock`;
  for (const host of [process.env.DOCKER_HOST, privateHost]) {
    if (!host?.startsWith('unix://')) continue;
    const docker = clientFor(host);
    if (await answers(docker)) return { docker, host };
  }
  return undefined;
}

/**
 * The daemon to test against. Also sets `process.env.DOCKER_HOST`, so code under test that builds
 * its own client (and the docker/skopeo CLIs) talks to the same daemon.
 */
export function getTestDocker(): Promise<{ docker: Dockerode; host: string }> {
  cached ??= (async () => {
    const fromEnv = process.env.DOCKER_HOST;
    const running = await runningTestDocker();
    if (running) {
      process.env.DOCKER_HOST = running.host;
      return running;
    }
    const store = testDockerStore();
    let out: string;
    try {
      const env = store === 'containerd' ? { ...process.env, ASTRO_SDK_DOCKER_STORE: store, ASTRO_SDK_DOCKER_DIR: '/tmp/astro-sdk-docker-containerd' } : process.env;
      ({ stdout: out } = await run('bash', [START_SCRIPT], { timeout: 300_000, env }));
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(
        `No Docker daemon (${store} image store) for the image tests: DOCKER_HOST=${fromEnv ?? '(unset)'} does not answer and ` +
          `scripts/start-dockerd.sh failed: ${e.stderr ?? e.message}`,
      );
    }
    const m = /export DOCKER_HOST=(\S+)/.exec(out);
    if (!m) throw new Error(`scripts/start-dockerd.sh printed no DOCKER_HOST: ${out}`);
    const host = m[1]!;
    const d = clientFor(host);
    if (!(await answers(d))) throw new Error(`Docker daemon at ${host} does not answer after start-dockerd.sh`);
    process.env.DOCKER_HOST = host;
    return { docker: d, host };
  })();
  return cached;
}

/** Path of a statically linked busybox on the host (Debian `busybox-static`). */
export async function staticBusybox(): Promise<string> {
  const candidates = ['/bin/busybox', '/usr/bin/busybox'];
  for (const c of candidates) {
    try {
      await access(c);
      const { stdout } = await run('file', ['-L', c]).catch(() => ({ stdout: 'statically linked' }));
      if (/statically linked|static-pie/.test(stdout)) return c;
    } catch {
      /* try next */
    }
  }
  throw new Error('A static busybox is needed to run FROM-scratch test containers: apt-get install -y busybox-static');
}

/** A file of a test image: text, bytes, or a copy of a host file. */
export type FixtureFile = string | Buffer | { copyFrom: string; mode?: number };

/** Spec of an image built FROM scratch with one COPY per layer. */
export interface ScratchImageSpec {
  /** Tag to give the image, e.g. `astro-test/abc:1`. */
  tag: string;
  /** One entry per layer: path inside the image -> content. */
  layers: Array<Record<string, FixtureFile>>;
  labels?: Record<string, string>;
  /** Include /bin/busybox (static) as an extra first layer, so containers can run. @default false */
  busybox?: boolean;
  cmd?: string[];
}

/**
 * Build an image FROM scratch through the daemon (`docker build` with COPY only; no base image is
 * pulled). Returns the image ID.
 */
export async function buildScratchImage(spec: ScratchImageSpec): Promise<string> {
  const { host } = await getTestDocker();
  const ctx = await mkdtemp(join(tmpdir(), 'astro-img-ctx-'));
  try {
    const lines = ['FROM scratch'];
    const layers = [...spec.layers];
    if (spec.busybox) layers.unshift({ 'bin/busybox': { copyFrom: await staticBusybox(), mode: 0o755 } });
    for (const [i, layer] of layers.entries()) {
      const dir = join(ctx, `l${i}`);
      for (const [path, content] of Object.entries(layer)) {
        const target = join(dir, path);
        await mkdir(dirname(target), { recursive: true });
        if (typeof content === 'string' || Buffer.isBuffer(content)) await writeFile(target, content);
        else {
          await copyFile(content.copyFrom, target);
          if (content.mode !== undefined) await chmod(target, content.mode);
        }
      }
      lines.push(`COPY l${i}/ /`);
    }
    const labels = { [TEST_LABEL]: 'true', ...spec.labels };
    for (const [k, v] of Object.entries(labels)) lines.push(`LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`);
    if (spec.cmd) lines.push(`CMD ${JSON.stringify(spec.cmd)}`);
    await writeFile(join(ctx, 'Dockerfile'), lines.join('\n') + '\n');
    const { stdout } = await run('docker', ['-H', host, 'build', '-q', '-t', spec.tag, ctx], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      timeout: 120_000,
    });
    return stdout.trim();
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

/** `docker <args>` against the test daemon. */
export async function dockerCli(args: string[], timeoutMs = 120_000): Promise<string> {
  const { host } = await getTestDocker();
  const { stdout } = await run('docker', ['-H', host, ...args], {
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  });
  return stdout;
}

/** Remove images (ignores missing ones). */
/**
 * Remove images built FROM the shared test runtime image, at the end of the run when the run set
 * `ASTRO_TEST_IMAGE_REMOVALS` (vitest.config.ts; test/helpers/image-removals.ts removes them), else
 * now. The daemon's classic builder probes its cache by listing every child of the FROM image and
 * reading each: one removed meanwhile by another test file fails that build with "unable to find
 * image" (seen in CI), so no such image is removed while other files may be building.
 */
export async function removeImagesAfterRun(...refs: string[]): Promise<void> {
  const list = process.env.ASTRO_TEST_IMAGE_REMOVALS;
  if (!list) return removeImages(...refs);
  await appendFile(list, refs.map((ref) => `${ref}\n`).join(''));
}

export async function removeImages(...refs: string[]): Promise<void> {
  const { docker } = await getTestDocker();
  for (const ref of refs) {
    await docker
      .getImage(ref)
      .remove({ force: true })
      .catch(() => undefined);
  }
}

/** Load a `docker save` archive into the daemon; returns the daemon's answer text. */
export async function loadArchive(path: string): Promise<string> {
  return dockerCli(['load', '-i', path]);
}

/** A unique, lower-case name fragment for tags and repositories. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}${createHash('sha1').update(`${process.pid}-${Date.now()}-${Math.random()}`).digest('hex').slice(0, 10)}`;
}
