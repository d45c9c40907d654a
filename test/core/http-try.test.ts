/**
 * `requestTextOnce`, the one try behind the API transport and the Airflow import-error GETs, over
 * real loopback HTTP: what a late, dropped or cancelled answer becomes, and that the retry loop's
 * failure kind comes with it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureOf } from '../../src/core/failure.js';
import { requestTextOnce } from '../../src/core/http-try.js';

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/ok') res.writeHead(503, { 'retry-after': '2' }).end('{"busy":true}');
    else if (req.url === '/late') setTimeout(() => res.end('late'), 2_000).unref();
    else if (req.url === '/drop') req.socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});

const tryOf = (extra: { timeoutMs?: number; signal?: AbortSignal } = {}) => ({
  method: 'GET' as const,
  headers: { accept: 'application/json' },
  timeoutMs: extra.timeoutMs ?? 5_000,
  what: 'GET /thing',
  peer: 'the test server',
  hint: 'Check the test.',
  ...(extra.signal ? { signal: extra.signal } : {}),
});

describe('requestTextOnce', () => {
  it('hands any status back with its headers and text: the caller words API errors', async () => {
    const answer = await requestTextOnce(`${base}/ok`, tryOf());
    expect(answer).toMatchObject({ status: 503, text: '{"busy":true}' });
    expect(answer.headers['retry-after']).toBe('2');
  });

  it('a late answer is ASTRO_TIMEOUT with a timeout failure, naming the request and the limit', async () => {
    const error = await requestTextOnce(`${base}/late`, tryOf({ timeoutMs: 150 })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ASTRO_TIMEOUT', message: 'GET /thing did not answer within 150 ms. Check the test.' });
    expect(failureOf(error)?.kind).toBe('timeout');
  });

  it('a dropped connection is ASTRO_CONNECTION with a reset failure, so idempotent calls retry it', async () => {
    const error = await requestTextOnce(`${base}/drop`, tryOf()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ASTRO_CONNECTION' });
    expect((error as Error).message).toMatch(/^Could not reach the test server for GET \/thing: .+\. Check the test\.$/);
    expect(failureOf(error)?.kind).toBe('reset');
  });

  it('the caller cancelling is ASTRO_ABORTED, not a timeout, before and during the try', async () => {
    const before = new AbortController();
    before.abort();
    await expect(requestTextOnce(`${base}/late`, tryOf({ signal: before.signal }))).rejects.toMatchObject({ code: 'ASTRO_ABORTED' });
    const during = new AbortController();
    setTimeout(() => during.abort(), 100);
    await expect(requestTextOnce(`${base}/late`, tryOf({ signal: during.signal, timeoutMs: 150 }))).rejects.toMatchObject({ code: 'ASTRO_ABORTED' });
  });
});
