/**
 * The second Ctrl-C: a run (run.ts, in this process, against the fake Astro over real HTTP) that is
 * interrupted twice before the SDK has stopped exits at once with the first signal's code and says
 * why, while one interrupt lets the SDK stop and ends with ASTRO_ABORTED (exit-codes.test.ts shows
 * that with a real SIGINT to the bin).
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run, type LastWords } from '../../src/cli/run.js';
import { interruptions, type RunSignal } from '../../src/cli/signals.js';
import { cliEnv, dagsProject, fakeAstro, ndjson } from './helpers.js';

const DEP = 'clclisignals000000000001';

/** A `dags --json` run whose upload crawls (64 KiB/s), with the interruption state main.ts would give it. */
async function crawlingRun() {
  const astro = await fakeAstro({ deployments: [{ id: DEP }] });
  const project = dagsProject({ 'dags/data/blob.bin': randomBytes(1 << 20) });
  astro.fail({ route: /^blob\.put/, times: Number.POSITIVE_INFINITY, action: { kind: 'throttle', bytesPerSecond: 64 * 1024 } });
  // The client reads the token and URL from the process's environment, as in the bin.
  vi.stubEnv('ASTRO_API_TOKEN', astro.token);
  vi.stubEnv('ASTRO_API_URL', astro.baseUrl);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  let lastWords: LastWords = () => {};
  const exits: number[] = [];
  const interrupts = interruptions({ lastWords: () => lastWords(), exit: (code) => exits.push(code) });
  const done = run(
    ['dags', '--deployment-id', DEP, '--dags-dir', `${project}/dags`, '--json'],
    { stdout, stderr, env: cliEnv(astro), cwd: project, signal: interrupts.signal, interruptedBy: interrupts.interruptedBy },
    (fn) => (lastWords = fn),
  );
  const uploading = async () => {
    while (!out.includes('"type":"upload:start"')) await new Promise((r) => setTimeout(r, 20));
  };
  return { astro, done, interrupts, exits, uploading, output: () => ({ out, err }) };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('interrupts', () => {
  it.each<[RunSignal, number]>([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ])('a second signal before the SDK stopped exits at once with the first one’s code (%s: %i), saying so', async (first, code) => {
    const r = await crawlingRun();
    await r.uploading();
    r.interrupts.onSignal(first);
    // Before any of the SDK's stopping has run: a user pressing Ctrl-C twice in a row.
    r.interrupts.onSignal('SIGINT');
    expect(r.exits).toEqual([code]);
    const { last } = ndjson(r.output().out);
    expect(last).toMatchObject({ type: 'error', code: 'ASTRO_ABORTED', exitCode: code });
    expect(String(last.message)).toContain('Interrupted twice');
    expect(r.output().err).toContain('press Ctrl-C again to exit at once');
    await r.done;
    expect(r.astro.requestsFor('deploys.finalize')).toHaveLength(0);
  });

  it('one signal lets the SDK stop: the run ends with 130 and ASTRO_ABORTED from the SDK, without the second-signal exit', async () => {
    const r = await crawlingRun();
    await r.uploading();
    r.interrupts.onSignal('SIGINT');
    expect(await r.done).toBe(130);
    expect(r.exits).toEqual([]);
    const { last } = ndjson(r.output().out);
    expect(last).toMatchObject({ type: 'error', code: 'ASTRO_ABORTED', exitCode: 130 });
    expect(String(last.message)).not.toContain('Interrupted twice');
    expect(r.astro.requestsFor('deploys.finalize')).toHaveLength(0);
  });
});
