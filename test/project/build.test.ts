/**
 * buildProjectImage on a real Docker engine, with both builders, from an Astro-like base image
 * that has real Python and pytest (test/helpers/runtime-image.ts). RUN steps run without a
 * network (`networkMode: 'none'`): the test daemon has no bridge. After every case the project
 * folder is byte-identical to what it was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { buildProjectImage, type BuildEvent, type BuildProjectImageOptions } from '../../src/image/build.js';
import { ImageBuildError, isAstroError } from '../../src/core/errors.js';
import { getTestDocker, removeImagesAfterRun, uniqueName } from '../helpers/docker.js';
import { getRuntimeImage, TEST_RUNTIME_VERSION } from '../helpers/runtime-image.js';
import { astroProject, filesInImage, guardProject, makeProject, runInImage } from './helpers.js';

let base: string;
let docker: Dockerode;
const tags: string[] = [];

beforeAll(async () => {
  ({ docker } = await getTestDocker());
  base = await getRuntimeImage();
}, 900_000);

afterAll(async () => {
  await removeImagesAfterRun(...tags);
});

function newTag(): string {
  const tag = `astro-sdk-test/project-${uniqueName()}:latest`;
  tags.push(tag);
  return tag;
}

async function build(dir: string, options: BuildProjectImageOptions = {}) {
  const events: BuildEvent[] = [];
  const result = await buildProjectImage(dir, { networkMode: 'none', tag: newTag(), docker, onEvent: (e) => events.push(e), ...options });
  return { result, events };
}

/** Host processes whose command line contains `token` (the daemon runs on this machine). */
async function processesWith(token: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(token) && Number(pid) !== process.pid) out.push(Number(pid));
  }
  return out;
}

/** Which of `needles` occur in the stream's bytes (chunk boundaries included). */
async function streamContains(stream: NodeJS.ReadableStream, needles: string[]): Promise<string[]> {
  const found = new Set<string>();
  const keep = Math.max(...needles.map((n) => Buffer.byteLength(n)));
  let carry = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const window = Buffer.concat([carry, chunk]);
    for (const n of needles) if (window.includes(n)) found.add(n);
    carry = window.subarray(Math.max(0, window.length - keep));
  }
  return [...found];
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

for (const builder of ['classic', 'buildkit'] as const) {
  describe(`buildProjectImage (${builder})`, () => {
    it('builds linux/amd64 with the project copied by ONBUILD, .dockerignore honoured, labels and build args applied, and reports steps', async () => {
      const dir = await makeProject(
        astroProject(base, {
          // A step of its own per run: BuildKit's cache outlives the images, so a step seen before would come from it.
          Dockerfile: `FROM ${base}\nARG GREETING=none\nRUN echo "greeting=$GREETING run=${uniqueName()}" && echo "$GREETING" > /greeting\n`,
          '.dockerignore': '.env\ninclude/secret*\n**/__pycache__\n',
          '.env': 'AIRFLOW_VAR=1\n',
          'include/secret.txt': 'do not ship',
          'dags/__pycache__/example_dag.cpython-311.pyc': 'pyc',
        }),
      );
      const unchanged = await guardProject(dir);
      const { result, events } = await build(dir, { builder, buildArgs: { GREETING: 'hello-astro' }, labels: { 'com.example.team': 'data' } });
      expect(result).toMatchObject({ builder, platform: 'linux/amd64', pulled: false });
      expect(result.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
      const info = await docker.getImage(result.tag).inspect();
      expect(info.Id).toBe(result.imageId);
      expect(info.Architecture).toBe('amd64');
      expect(info.Config.Labels).toMatchObject({ 'com.example.team': 'data', 'io.astronomer.docker.runtime.version': TEST_RUNTIME_VERSION });
      const files = await filesInImage(result.tag);
      expect(files).toEqual(expect.arrayContaining(['Dockerfile', 'dags/example_dag.py', 'dags/etl/load.py', 'include/sql/query.sql', 'plugins/helpers.py', 'tests/test_dags.py', '.astro/config.yaml']));
      expect(files).not.toContain('.env');
      expect(files).not.toContain('include/secret.txt');
      expect(files.some((f) => f.includes('__pycache__'))).toBe(false);
      expect((await runInImage(result.tag, 'cat /greeting')).trim()).toBe('hello-astro');
      const types = events.map((e) => e.type);
      expect(types[0]).toBe('build:start');
      expect(types).toContain('build:context');
      expect(types.at(-1)).toBe('build:complete');
      const context = events.find((e) => e.type === 'build:context');
      expect(context).toMatchObject({ excluded: 3 });
      const run = events.filter((e) => e.type === 'build:step' && e.name.includes('RUN echo'));
      expect(run.map((e) => (e as { status: string }).status)).toEqual(['started', 'done']);
      expect(events.some((e) => e.type === 'build:output' && e.line.includes('greeting=hello-astro'))).toBe(true);
      await unchanged();
    }, 600_000);

    it('with excludeDags, leaves dags/ out of the image without touching .dockerignore; a rebuild with no change comes from the cache', async () => {
      const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nRUN ls -R /usr/local/airflow > /listing\n`, '.dockerignore': '!dags/example_dag.py\n' }));
      const unchanged = await guardProject(dir);
      const first = await build(dir, { builder, excludeDags: true });
      const files = await filesInImage(first.result.tag);
      expect(files.some((f) => f.startsWith('dags/'))).toBe(false);
      expect(files).toContain('plugins/helpers.py');
      expect(first.events[0]).toMatchObject({ type: 'build:start', exclude: ['dags/'] });
      const again = await buildProjectImage(dir, { networkMode: 'none', tag: first.result.tag, docker, builder, excludeDags: true });
      expect(again.imageId).toBe(first.result.imageId);
      expect(again.cachedSteps).toBeGreaterThan(0);
      expect(again.cachedSteps).toBe(again.steps.filter((s) => !/^(\[\d+\/\d+\] )?FROM /.test(s.name) || s.cached).length);
      await unchanged();
    }, 600_000);

    it('a failing RUN step gives ASTRO_IMAGE_BUILD_FAILED with the step and its last output lines', async () => {
      const dir = await makeProject(
        astroProject(base, {
          Dockerfile: `FROM ${base}\nRUN echo "installing the-package" && echo "ERROR: No matching distribution found for the-package" >&2 && exit 3\nRUN echo never\n`,
        }),
      );
      const unchanged = await guardProject(dir);
      const events: BuildEvent[] = [];
      const tag = newTag();
      const err = await buildProjectImage(dir, { networkMode: 'none', tag, docker, builder, onEvent: (e) => events.push(e) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageBuildError);
      const e = err as ImageBuildError;
      expect(e.code).toBe('ASTRO_IMAGE_BUILD_FAILED');
      expect(e.builder).toBe(builder);
      expect(e.step).toMatch(/RUN echo "installing the-package"/);
      expect(e.outputTail).toEqual(expect.arrayContaining(['installing the-package', 'ERROR: No matching distribution found for the-package']));
      expect(e.message).toMatch(/exit code: 3|returned a non-zero code: 3/);
      expect(e.message).toContain('No matching distribution');
      expect(events.some((x) => x.type === 'build:step' && x.status === 'failed')).toBe(true);
      expect(events.some((x) => x.type === 'build:step' && x.name.includes('never'))).toBe(false);
      await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
      await unchanged();
    }, 600_000);

    it('an abort mid-build stops the build on the daemon and rejects with ASTRO_ABORTED', async () => {
      const token = String(4000 + Math.floor(Math.random() * 5000));
      const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nRUN echo start && sleep ${token}.5 && echo end\n` }));
      const unchanged = await guardProject(dir);
      const before = (await docker.listContainers({ all: true })).length;
      const controller = new AbortController();
      const tag = newTag();
      const building = buildProjectImage(dir, { networkMode: 'none', tag, docker, builder, signal: controller.signal }).catch((e: unknown) => e);
      // The step's process is running on the daemon's host before the abort.
      await waitFor('the RUN step to start', async () => ((await processesWith(`sleep ${token}.5`)).length ? true : undefined), 300_000);
      controller.abort(new Error('user pressed ctrl-c'));
      const err = await building;
      expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
      await waitFor('the RUN process to end', async () => ((await processesWith(`sleep ${token}.5`)).length === 0 ? true : undefined), 30_000);
      await waitFor('no build container left', async () => ((await docker.listContainers({ all: true })).length <= before ? true : undefined), 30_000);
      await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
      await unchanged();
    }, 600_000);
  });
}

describe("buildProjectImage with builder 'auto'", () => {
  it('builds with BuildKit a Dockerfile that reads the platform arguments, which the classic builder would leave empty', async () => {
    const dir = await makeProject(
      astroProject(base, { Dockerfile: `FROM ${base}\nARG TARGETARCH\nARG TARGETPLATFORM\nLABEL arch="x\${TARGETARCH}x" platform="x\${TARGETPLATFORM}x"\n` }),
    );
    const { result, events } = await build(dir);
    expect(result.builder).toBe('buildkit');
    expect(events[0]).toMatchObject({ type: 'build:start', builder: 'buildkit' });
    const info = await docker.getImage(result.tag).inspect();
    expect(info.Config.Labels).toMatchObject({ arch: 'xamd64x', platform: 'xlinux/amd64x' });
  }, 600_000);

  it('keeps the classic builder for a Dockerfile without BuildKit-only syntax', async () => {
    const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nCOPY --chown=1000:1000 requirements.txt /tmp/r.txt\n` }));
    const { result } = await build(dir);
    expect(result.builder).toBe('classic');
  }, 600_000);
});

describe('buildProjectImage step output (BuildKit)', () => {
  // BuildKit sends a step's output as raw bytes in log messages that may end mid-character. (The
  // classic builder's daemon encodes each piece of output as a JSON string itself, so a character
  // it splits arrives as U+FFFD already: nothing a client can mend.)
  it('keeps multi-byte characters whole where log messages split them', async () => {
    const dir = await makeProject(
      astroProject(base, {
        Dockerfile: `FROM ${base}\nRUN python3 -c "import sys; [sys.stdout.write(chr(233) * 2999 + ' ${uniqueName()}\\n') for _ in range(30)]"\n`,
      }),
    );
    const { events } = await build(dir, { builder: 'buildkit', noCache: true });
    const text = events
      .filter((e) => e.type === 'build:output')
      .map((e) => (e as { line: string }).line)
      .join('\n');
    expect(text).not.toContain('\ufffd');
    expect(text.match(/é/g)).toHaveLength(30 * 2999);
  }, 600_000);
});

describe('buildProjectImage failure in one of parallel stages (BuildKit)', () => {
  it('names the step that failed, not a sibling cancelled because of it', async () => {
    const dir = await makeProject(
      astroProject(base, {
        Dockerfile: [
          `FROM ${base} AS slow`,
          `RUN echo slow-${uniqueName()} && sleep 20`,
          `FROM ${base} AS broken`,
          `RUN echo broken-${uniqueName()} && sleep 1 && exit 3`,
          `FROM ${base}`,
          'COPY --from=slow /etc/hostname /a',
          'COPY --from=broken /etc/hostname /b',
          '',
        ].join('\n'),
      }),
    );
    const err = await build(dir, { builder: 'buildkit' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageBuildError);
    expect((err as ImageBuildError).step).toMatch(/RUN echo broken-/);
  }, 600_000);
});

describe('buildProjectImage build secrets (BuildKit session)', () => {
  it('a secret is readable in RUN --mount=type=secret, absent from the image and redacted from events', async () => {
    const secret = `s3cr3t-${uniqueName()}`;
    const fileSecret = `file-secret-${uniqueName()}`;
    const sha = (text: string) => createHash('sha256').update(text).digest('hex');
    const dir = await makeProject(
      astroProject(base, {
        Dockerfile:
          `FROM ${base}\n` +
          `RUN --mount=type=secret,id=token test "$(sha256sum < /run/secrets/token | cut -c1-64)" = "${sha(secret)}" || (echo secret mismatch; exit 1)\n` +
          'RUN --mount=type=secret,id=token --mount=type=secret,id=pip cat /run/secrets/token /run/secrets/pip | sha256sum | cut -c1-64 > /secret.sha && cat /run/secrets/token\n',
      }),
    );
    const secretFile = join(await makeProject({ 'pip.conf': fileSecret }), 'pip.conf');
    const unchanged = await guardProject(dir);
    process.env.ASTRO_TEST_BUILD_SECRET = secret;
    try {
      const { result, events } = await build(dir, { buildSecrets: { token: { env: 'ASTRO_TEST_BUILD_SECRET' }, pip: { file: secretFile } } });
      expect(result.builder).toBe('buildkit');
      expect((await runInImage(result.tag, 'cat /secret.sha')).trim()).toBe(sha(secret + fileSecret));
      expect((await runInImage(result.tag, 'ls -A /run/secrets 2>/dev/null | wc -l')).trim()).toBe('0');
      // No byte of the saved image (layers, config, history) holds either value.
      const saved = (await docker.getImage(result.tag).get()) as NodeJS.ReadableStream;
      expect(await streamContains(saved, [secret, fileSecret])).toEqual([]);
      // The RUN that printed it: its output line is redacted in the events.
      expect(JSON.stringify(events)).not.toContain(secret);
      expect(events.some((e) => e.type === 'build:output' && e.line.includes('[REDACTED]'))).toBe(true);
    } finally {
      delete process.env.ASTRO_TEST_BUILD_SECRET;
    }
    await unchanged();
  }, 600_000);

  it('on a daemon API without BuildKit sessions, build secrets give ASTRO_IMAGE_BUILDKIT_UNAVAILABLE before anything is built', async () => {
    const { host } = await getTestDocker();
    // The same daemon through a client pinned to Engine API 1.38: no /session for BuildKit.
    const old = new Dockerode({ socketPath: host.slice('unix://'.length), version: 'v1.38' });
    const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nRUN --mount=type=secret,id=t cat /run/secrets/t\n` }));
    const unchanged = await guardProject(dir);
    const tag = newTag();
    const events: BuildEvent[] = [];
    const err = await buildProjectImage(dir, { tag, docker: old, buildSecrets: { t: { env: 'PATH' } }, onEvent: (e) => events.push(e) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_IMAGE_BUILDKIT_UNAVAILABLE', name: 'ImageError' });
    expect((err as Error).message).toMatch(/1\.38/);
    expect(events).toEqual([]);
    await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await unchanged();
  }, 120_000);
});

describe('buildProjectImage intermediate containers (classic)', () => {
  it('are removed by the SDK, not the daemon: handed to onContainerRemoval, or awaited; after a failed step too', async () => {
    const id = uniqueName();
    // Containers inherit their image's labels: the RUN steps' containers carry this one.
    const label = `io.astro-sdk-test.build=${id}`;
    const left = async () => docker.listContainers({ all: true, filters: { label: [label] } });
    const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nLABEL io.astro-sdk-test.build=${id}\nRUN echo one\nRUN echo two\n` }));
    const removals: Array<Promise<void>> = [];
    const { result } = await build(dir, { builder: 'classic', onContainerRemoval: (r) => removals.push(r) });
    expect(result.steps.filter((s) => s.name.startsWith('RUN')).length).toBe(2);
    expect(removals).toHaveLength(1);
    await Promise.all(removals);
    expect(await left()).toEqual([]);

    // Without the option the build resolves only once they are gone.
    await build(dir, { builder: 'classic', noCache: true });
    expect(await left()).toEqual([]);

    // A failed step's container is removed too (the daemon's forcerm would have; docker build keeps it).
    const failing = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nLABEL io.astro-sdk-test.build=${id}\nRUN echo ok\nRUN exit 3\n` }));
    const more: Array<Promise<void>> = [];
    const err = await build(failing, { builder: 'classic', onContainerRemoval: (r) => more.push(r) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageBuildError);
    expect(more).toHaveLength(1);
    await Promise.all(more);
    expect(await left()).toEqual([]);
  }, 600_000);

  it('an abort as a step starts, while the daemon creates its container, leaves no container behind', async () => {
    const id = uniqueName();
    const label = `io.astro-sdk-test.build=${id}`;
    const left = async () => docker.listContainers({ all: true, filters: { label: [label] } });
    const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nLABEL ${label}\nENV A=1\nRUN echo one\nENV B=2\nRUN echo two\nLABEL c=d\n` }));
    // Each later step in its turn: the abort lands as its "Step n/m" line arrives, when the daemon
    // is about to create (or is creating) the step's container, before any line names it.
    for (const step of ['ENV A=1', 'RUN echo one', 'LABEL c=d']) {
      const controller = new AbortController();
      const removals: Array<Promise<void>> = [];
      const err = await buildProjectImage(dir, {
        networkMode: 'none',
        tag: newTag(),
        docker,
        builder: 'classic',
        noCache: true,
        signal: controller.signal,
        onContainerRemoval: (r) => removals.push(r),
        onEvent: (e) => {
          if (e.type === 'build:step' && e.status === 'started' && e.name === step) controller.abort();
        },
      }).catch((e: unknown) => e);
      expect(err, step).toMatchObject({ code: 'ASTRO_ABORTED' });
      // The removal handed over ends once the container the daemon was creating is gone.
      await Promise.all(removals);
      expect(await left(), step).toEqual([]);
    }
  }, 600_000);
});

/** How many of this process's file descriptors are open on `path`. */
function descriptorsOn(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n += 1;
    } catch {
      // Closed while listed.
    }
  }
  return n;
}

describe('buildProjectImage leaves no file open', () => {
  it('when the daemon refuses the build before reading the context, or the caller aborts while it streams', async () => {
    const dir = await makeProject(astroProject(base));
    // A sparse 256 MiB file: more than the daemon and the sockets buffer, so the walk is inside it.
    const big = join(dir, 'include', 'big.bin');
    await writeFile(big, '');
    await truncate(big, 256 * 1024 * 1024);
    for (let i = 0; i < 2; i++) {
      // An invalid tag: the daemon answers 500 without reading the body.
      const err = await buildProjectImage(dir, { networkMode: 'none', tag: 'Bad:Tag:x', docker }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ASTRO_IMAGE_BUILD_FAILED' });
    }
    for (let i = 0; i < 2; i++) {
      const controller = new AbortController();
      const build = buildProjectImage(dir, { networkMode: 'none', tag: newTag(), docker, signal: controller.signal });
      await waitFor('the walk inside big.bin', async () => (descriptorsOn(big) > 0 ? true : undefined), 30_000);
      controller.abort();
      await expect(build).rejects.toMatchObject({ code: 'ASTRO_ABORTED' });
    }
    // Streams close on the next turns of the event loop.
    await waitFor('no descriptor left on big.bin', async () => (descriptorsOn(big) === 0 ? true : undefined), 5_000).catch(() => undefined);
    expect(descriptorsOn(big)).toBe(0);
  }, 600_000);
});

describe('buildProjectImage when the project changes under it', () => {
  it('a file removed while the context streams stops the build with ASTRO_PROJECT_INVALID instead of leaving it waiting', async () => {
    const dir = await makeProject(astroProject(base, { 'zz-last.txt': 'read after include/' }));
    // A sparse 128 MiB file: the walk is inside include/ long enough to remove a later file.
    const big = join(dir, 'include', 'big.bin');
    await truncate(big, 128 * 1024 * 1024).catch(async () => {
      await writeFile(big, '');
      await truncate(big, 128 * 1024 * 1024);
    });
    let removed = false;
    const watcher = setInterval(() => {
      // The SDK's process has big.bin open: the root folder was listed, zz-last.txt not yet read.
      for (const fd of readdirSync('/proc/self/fd')) {
        let target = '';
        try {
          target = readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          continue;
        }
        if (target === big && !removed) {
          removed = true;
          rmSync(join(dir, 'zz-last.txt'));
        }
      }
    }, 2);
    try {
      const tag = newTag();
      const started = Date.now();
      const err = await buildProjectImage(dir, { networkMode: 'none', tag, docker }).catch((e: unknown) => e);
      expect(removed).toBe(true);
      expect(err).toMatchObject({ code: 'ASTRO_PROJECT_INVALID', name: 'ProjectError' });
      expect((err as Error).message).toMatch(/zz-last\.txt/);
      expect(Date.now() - started).toBeLessThan(120_000);
      await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
    } finally {
      clearInterval(watcher);
    }
  }, 300_000);
});

describe('buildProjectImage before anything runs', () => {
  it('a folder without a Dockerfile is ASTRO_PROJECT_NOT_FOUND, and no daemon is contacted', async () => {
    const dir = await makeProject({ 'dags/a.py': 'x = 1\n' });
    const unchanged = await guardProject(dir);
    const nowhere = new Dockerode({ socketPath: '/nonexistent/docker.sock' });
    const err = await buildProjectImage(dir, { docker: nowhere }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_PROJECT_NOT_FOUND', name: 'ProjectError' });
    await unchanged();
  });

  it('an invalid Dockerfile fails with ASTRO_IMAGE_BUILD_FAILED and the daemon message', async () => {
    const dir = await makeProject(astroProject(base, { Dockerfile: `FROM ${base}\nFROBNICATE now\n` }));
    const err = await buildProjectImage(dir, { networkMode: 'none', tag: newTag(), docker }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_IMAGE_BUILD_FAILED' });
    expect((err as Error).message).toMatch(/frobnicate/i);
  }, 120_000);

  it('a missing build secret file is ASTRO_CONFIG_INVALID_OPTION', async () => {
    const dir = await makeProject(astroProject(base));
    const err = await buildProjectImage(dir, { docker, buildSecrets: { x: { file: '/nonexistent/secret' } } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_CONFIG_INVALID_OPTION' });
  });
});
