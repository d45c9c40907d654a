/**
 * The DAG parse check in a real container. FROM-scratch test images have no pytest, so the check
 * runs a shell script with a static busybox instead; what is under test is the mechanics: files
 * copied where the CLI puts them, env passed, output collected, exit code read, container removed.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { parseEnvFile, runDagParseCheck } from '../../src/image/index.js';
import { buildScratchImage, getTestDocker, removeImages, uniqueName } from '../helpers/docker.js';

let project: string;
let image: string;
let bare: string;

/** Fails on any DAG containing SYNTAX_ERROR; prints what it saw. */
const CHECK = [
  '/bin/busybox',
  'sh',
  '-c',
  [
    'echo "cwd=$(/bin/busybox pwd) mode=$PARSE_MODE from_env_file=$FROM_FILE"',
    '/bin/busybox cat .astro/test_dag_integrity_default.py',
    'for f in dags/*.py dags/sub/*.py; do if /bin/busybox grep -q SYNTAX_ERROR "$f"; then echo "FAILED $f" >&2; exit 1; fi; echo "ok $f"; done',
    '/bin/busybox test -f include/helper.sql && echo include-copied',
  ].join('; '),
];

beforeAll(async () => {
  await getTestDocker();
  project = await mkdtemp(join(tmpdir(), 'astro-parse-'));
  await mkdir(join(project, 'dags', 'sub'), { recursive: true });
  await mkdir(join(project, '.astro'), { recursive: true });
  await mkdir(join(project, 'include'), { recursive: true });
  await writeFile(join(project, 'dags', 'good.py'), 'print("dag")\n');
  await writeFile(join(project, 'dags', 'sub', 'nested.py'), 'print("nested")\n');
  await writeFile(join(project, '.astro', 'test_dag_integrity_default.py'), '# integrity test\n');
  await writeFile(join(project, 'include', 'helper.sql'), 'select 1;\n');
  await writeFile(join(project, '.env'), '# comment\nFROM_FILE="yes"\n');
  image = `astro-test/${uniqueName()}:parse`;
  bare = `astro-test/${uniqueName()}:bare`;
  await buildScratchImage({ tag: image, busybox: true, layers: [{ 'usr/local/airflow/.keep': '' }] });
  await buildScratchImage({ tag: bare, layers: [{ 'usr/local/airflow/.keep': '' }] });
});

afterAll(async () => {
  await removeImages(image, bare);
  await rm(project, { recursive: true, force: true });
});

/** Parse-check containers left from this file's images (other test files run parse checks at the same time). */
async function parseContainers(): Promise<number> {
  const { docker } = await getTestDocker();
  const list = await docker.listContainers({ all: true, filters: { label: ['io.astro-deploy-sdk.purpose=dag-parse-check'] } });
  return list.filter((c) => c.Image === image || c.Image === bare).length;
}

describe('runDagParseCheck', () => {
  it('passes, with the project copied to /usr/local/airflow, env passed and output streamed', async () => {
    const chunks: string[] = [];
    const result = await runDagParseCheck(image, {
      dagsDir: join(project, 'dags'),
      command: CHECK,
      env: { PARSE_MODE: 'strict' },
      envFile: join(project, '.env'),
      onOutput: (c) => chunks.push(c),
    });
    expect(result).toMatchObject({ passed: true, exitCode: 0 });
    expect(result.output).toContain('cwd=/usr/local/airflow mode=strict from_env_file=yes');
    expect(result.output).toContain('# integrity test');
    expect(result.output).toContain('ok dags/good.py');
    expect(result.output).toContain('ok dags/sub/nested.py');
    expect(result.output).toContain('include-copied');
    expect(chunks.join('')).toBe(result.output);
    expect(await parseContainers()).toBe(0);
  });

  it('keeps the output as written: a long line the log driver would cut mid-character arrives whole, on stdout and stderr', async () => {
    const chunks: string[] = [];
    // One line of 100,000 "aé" on stdout and one of "€" on stderr: read back from the daemon's logs,
    // they come in 16 KiB entries that end mid-character.
    const line = (text: string) => `/bin/busybox yes '${text}' | /bin/busybox head -n 100000 | /bin/busybox tr -d '\\n'`;
    const command = ['/bin/busybox', 'sh', '-c', `${line('aé')}; ${line('€')} >&2`];
    const result = await runDagParseCheck(image, { dagsDir: join(project, 'dags'), command, onOutput: (c) => chunks.push(c) });
    expect(result.passed).toBe(true);
    expect(result.output).not.toContain('\ufffd');
    expect(result.output.match(/aé/g)).toHaveLength(100_000);
    expect(result.output.match(/€/g)).toHaveLength(100_000);
    expect(chunks.join('')).toBe(result.output);
    expect(await parseContainers()).toBe(0);
  });

  it('reads the output from the logs with a docker client that cannot attach', async () => {
    const { docker } = await getTestDocker();
    const withoutAttach = new Proxy(docker, {
      get(target, key) {
        if (key !== 'createContainer') return Reflect.get(target, key) as unknown;
        return async (options: Parameters<typeof docker.createContainer>[0]) => {
          const container = await target.createContainer(options);
          return new Proxy(container, { get: (c, k) => (k === 'attach' ? undefined : (Reflect.get(c, k) as unknown)) });
        };
      },
    });
    const result = await runDagParseCheck(image, { dagsDir: join(project, 'dags'), command: CHECK, docker: withoutAttach });
    expect(result).toMatchObject({ passed: true, exitCode: 0 });
    expect(result.output).toContain('ok dags/sub/nested.py');
    expect(await parseContainers()).toBe(0);
  });

  it('fails with the output when a DAG does not parse', async () => {
    await writeFile(join(project, 'dags', 'bad.py'), 'SYNTAX_ERROR here\n');
    try {
      const result = await runDagParseCheck(image, { dagsDir: join(project, 'dags'), command: CHECK });
      expect(result.passed).toBe(false);
      expect(result.exitCode).toBe(1);
      expect(result.output).toContain('FAILED dags/bad.py');
    } finally {
      await rm(join(project, 'dags', 'bad.py'));
    }
    expect(await parseContainers()).toBe(0);
  });

  it('skips (and says so) when the integrity test file is missing and the default command is used', async () => {
    const other = await mkdtemp(join(tmpdir(), 'astro-parse-empty-'));
    await mkdir(join(other, 'dags'));
    try {
      const result = await runDagParseCheck(image, { dagsDir: join(other, 'dags') });
      expect(result).toMatchObject({ passed: true, skipped: 'no-integrity-test' });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('throws ASTRO_IMAGE_PARSE_CHECK_ERROR when the command cannot run (no pytest in the image) or times out', async () => {
    const noPytest = await runDagParseCheck(bare, { dagsDir: join(project, 'dags') }).catch((e: unknown) => e);
    expect(isAstroError(noPytest, 'ASTRO_IMAGE_PARSE_CHECK_ERROR')).toBe(true);
    const slow = await runDagParseCheck(image, { dagsDir: join(project, 'dags'), command: ['/bin/busybox', 'sleep', '30'], timeoutMs: 1500 }).catch(
      (e: unknown) => e,
    );
    expect(isAstroError(slow, 'ASTRO_IMAGE_PARSE_CHECK_ERROR')).toBe(true);
    expect((slow as Error).message).toMatch(/did not finish/);
    expect(await parseContainers()).toBe(0);
  });

  it('aborts on signal and removes the container', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user stop')), 800);
    const err = await runDagParseCheck(image, { dagsDir: join(project, 'dags'), command: ['/bin/busybox', 'sleep', '30'], signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
    expect(await parseContainers()).toBe(0);
  });

  it('reports a missing image and a missing DAGs folder', async () => {
    const missing = await runDagParseCheck(`astro-test/${uniqueName()}:none`, { dagsDir: join(project, 'dags'), command: CHECK }).catch((e: unknown) => e);
    expect(isAstroError(missing, 'ASTRO_IMAGE_NOT_FOUND')).toBe(true);
    const noDags = await runDagParseCheck(image, { dagsDir: join(project, 'nope') }).catch((e: unknown) => e);
    expect(isAstroError(noDags, 'ASTRO_IMAGE_PARSE_CHECK_ERROR')).toBe(true);
  });

  it('parses env files as astro dev reads them (docker compose): quotes removed, export allowed, bare keys from the environment', () => {
    expect(parseEnvFile('A=1\n# c\n\nexport B="two words"\nC=\'x=y\'\nbad line\n', {})).toEqual({ A: '1', B: 'two words', C: 'x=y' });
    // A bare key takes the value of the environment it is read in, and is left out without one.
    expect(parseEnvFile('FROM_HOST\nexport ALSO\nUNSET\nD=4\n', { FROM_HOST: 'h', ALSO: '' })).toEqual({ FROM_HOST: 'h', ALSO: '', D: '4' });
  });
});
