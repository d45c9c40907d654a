/**
 * An Astro-Runtime-like base image for the project tests, with real Python and real pytest, built
 * from Debian packages (no image registry is reachable here):
 *
 *   mmdebstrap --variant=essential --include=python3,python3-pytest bookworm <tar> <the host's Debian sources>
 *   docker import --change 'LABEL io.astronomer.docker.runtime.version=<v>' \
 *     --change 'WORKDIR /usr/local/airflow' --change 'ONBUILD COPY . .' <tar> <tag>
 *
 * It behaves as Astro Runtime images do for a project build: the runtime label, the Airflow home
 * as working directory, and an `ONBUILD COPY . .` that brings the project into the image.
 *
 * mmdebstrap reads the host's own Debian sources file (the mirror apt is set up with, and nothing
 * else), with the host's `Check-Valid-Until`/`Check-Date` settings and apt proxy, if any. The root
 * filesystem tarball is cached per machine under `~/.cache/astro-deploy-sdk/` (keyed by the
 * packages, the suite and the sources), the image by its tag in the daemon; a lock file keeps
 * parallel test workers from building it twice. When it cannot be built the tests fail with the
 * reason; they never skip.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dockerCli, getTestDocker, TEST_LABEL } from './docker.js';

const run = promisify(execFile);

/** The runtime version the test images carry unless asked otherwise (the fake Astro's default deployment runtime). */
export const TEST_RUNTIME_VERSION = '3.1-2';

const SUITE = 'bookworm';
const PACKAGES = ['python3', 'python3-pytest'];
/** Documentation and translations are not needed to run pytest; leaving them out halves the image. */
const DPKG_EXCLUDES = ['/usr/share/doc/*', '/usr/share/man/*', '/usr/share/info/*', '/usr/share/locale/*', '/usr/share/lintian/*'];
const SOURCES_CANDIDATES = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];

function cacheDir(): string {
  return process.env.ASTRO_SDK_TEST_CACHE ?? join(homedir(), '.cache', 'astro-deploy-sdk');
}

/** The host's apt settings mmdebstrap must share to reach the same mirror the same way. */
async function hostAptOptions(): Promise<string[]> {
  const options = ['Acquire::Check-Valid-Until "false"', 'Acquire::Check-Date "false"'];
  for (const key of ['Acquire::http::Proxy', 'Acquire::https::Proxy']) {
    const { stdout } = await run('apt-config', ['shell', 'V', key]).catch(() => ({ stdout: '' }));
    const m = /^V='(.*)'$/m.exec(stdout);
    if (m && m[1]) options.push(`${key} "${m[1]}"`);
  }
  return options;
}

async function hostSources(): Promise<{ path: string; text: string }> {
  for (const path of SOURCES_CANDIDATES) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text && /deb/.test(text)) return { path, text };
  }
  throw new Error(`No Debian sources file for mmdebstrap: looked for ${SOURCES_CANDIDATES.join(', ')}`);
}

async function imageExists(tag: string): Promise<boolean> {
  const { docker } = await getTestDocker();
  return docker
    .getImage(tag)
    .inspect()
    .then(() => true, () => false);
}

/** An exclusive lock file (created with O_EXCL); a lock whose holder died is taken over. */
async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await readFile(path, 'utf8').catch(() => ''));
      let alive = false;
      if (holder > 0) {
        try {
          process.kill(holder, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${path} (held by pid ${holder})`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}

/** Build (or find) the root filesystem tarball; returns its path. */
async function rootfsTarball(key: string, sources: string, aptOptions: string[]): Promise<string> {
  const dir = cacheDir();
  await mkdir(dir, { recursive: true });
  const tarball = join(dir, `runtime-rootfs-${key}.tar`);
  if (existsSync(tarball) && (await stat(tarball)).size > 0) return tarball;
  const mmdebstrap = await run('which', ['mmdebstrap']).then(
    (r) => r.stdout.trim(),
    () => '',
  );
  if (!mmdebstrap) throw new Error('mmdebstrap is needed to build the test runtime image: apt-get install -y mmdebstrap (.ci/run installs it)');
  const partial = `${tarball}.partial-${process.pid}`;
  const args = [
    '--variant=essential',
    `--include=${PACKAGES.join(',')}`,
    ...aptOptions.map((o) => `--aptopt=${o}`),
    ...DPKG_EXCLUDES.map((p) => `--dpkgopt=path-exclude=${p}`),
    '--format=tar',
    SUITE,
    partial,
    sources,
  ];
  try {
    await run(mmdebstrap, args, { timeout: 15 * 60_000, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    await rm(partial, { force: true });
    throw new Error(`mmdebstrap failed to build the test runtime root filesystem: ${(e.stderr ?? e.message).slice(-3000)}`);
  }
  await rename(partial, tarball);
  return tarball;
}

/**
 * The tag of an Astro-Runtime-like image labelled with `runtimeVersion`, building what is missing
 * (the tarball once per machine, the image once per daemon and version). Takes about 1-2 minutes
 * the first time on a 2-core machine, and well under a second afterwards.
 */
export async function getRuntimeImage(runtimeVersion = TEST_RUNTIME_VERSION): Promise<string> {
  const sources = await hostSources();
  const aptOptions = await hostAptOptions();
  const key = createHash('sha256')
    .update(JSON.stringify({ SUITE, PACKAGES, DPKG_EXCLUDES, sources: sources.text, aptOptions, variant: 'essential' }))
    .digest('hex')
    .slice(0, 12);
  const tag = `astro-sdk-test/runtime:${runtimeVersion.replace(/[^A-Za-z0-9_.-]/g, '_')}-${key}`;
  if (await imageExists(tag)) return tag;
  await mkdir(cacheDir(), { recursive: true });
  return withLock(join(cacheDir(), `runtime-${key}.lock`), async () => {
    if (await imageExists(tag)) return tag;
    const tarball = await rootfsTarball(key, sources.path, aptOptions);
    await dockerCli(
      [
        'import',
        '--platform',
        'linux/amd64',
        '--change',
        `LABEL io.astronomer.docker.runtime.version=${runtimeVersion}`,
        '--change',
        `LABEL ${TEST_LABEL}=true`,
        '--change',
        'WORKDIR /usr/local/airflow',
        '--change',
        'ENV PYTHONDONTWRITEBYTECODE=1',
        '--change',
        'ONBUILD COPY . .',
        '--change',
        'CMD ["python3"]',
        tarball,
        tag,
      ],
      10 * 60_000,
    );
    if (!(await imageExists(tag))) throw new Error(`docker import did not create ${tag}`);
    return tag;
  });
}
