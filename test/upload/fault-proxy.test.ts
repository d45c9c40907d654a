import { Agent as HttpAgent, createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { KIB } from './helpers.js';

/** Upstream that reports what it received and when the first body byte arrived. */
let upstream: Server;
let upstreamUrl: string;
let firstByteAt: number[] = [];
let proxy: FaultProxy;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => {
      if (n === 0) firstByteAt.push(Date.now());
      n += c.length;
    });
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, bytes: n, host: req.headers.host, custom: req.headers['x-custom'] });
      res.writeHead(201, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(body);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  proxy = await createFaultProxy({
    target: upstreamUrl,
    injectHeaders: (req): Record<string, string> => (req.url?.includes('inject') ? { 'x-ms-version-id': 'v1' } : {}),
  });
});
afterAll(async () => {
  await proxy.close();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});
beforeEach(() => {
  proxy.faults.clear();
  proxy.resetStats();
  firstByteAt = [];
});

describe('fault proxy', () => {
  it('forwards method, path, query and headers and counts bytes per route', async () => {
    const body = Buffer.alloc(100 * KIB, 7);
    const res = await request(`${proxy.url}/acct/c/b?comp=block&blockid=x&inject=1`, {
      method: 'PUT',
      headers: { 'x-custom': 'kept', 'content-length': String(body.length) },
      body,
    });
    const echo = (await res.body.json()) as Record<string, unknown>;
    expect(res.statusCode).toBe(201);
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.headers['x-ms-version-id']).toBe('v1');
    expect(echo).toMatchObject({ method: 'PUT', url: '/acct/c/b?comp=block&blockid=x&inject=1', bytes: body.length, custom: 'kept' });
    expect(proxy.stats.requests).toBe(1);
    expect(proxy.stats.bytesUp).toBe(body.length);
    expect(proxy.stats.bytesDown).toBeGreaterThan(0);
    expect(proxy.stats.byRoute['blob.putBlock']).toEqual({ requests: 1, bytesUp: body.length });
  });

  it('streams request bodies instead of buffering them', async () => {
    const body = new PassThrough();
    const pending = request(`${proxy.url}/stream`, { method: 'PUT', headers: { 'content-length': String(2 * 64 * KIB) }, body });
    body.write(Buffer.alloc(64 * KIB));
    const wroteFirstAt = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    // The upstream saw the first half while the client was still holding back the second.
    expect(firstByteAt).toHaveLength(1);
    expect(firstByteAt[0]! - wroteFirstAt).toBeLessThan(250);
    body.end(Buffer.alloc(64 * KIB));
    const res = await pending;
    expect(((await res.body.json()) as { bytes: number }).bytes).toBe(2 * 64 * KIB);
  });

  it('keeps client connections alive across requests', async () => {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const reused: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${proxy.url}/k${i}`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end();
        reused.push(req.reusedSocket);
      });
    }
    agent.destroy();
    expect(reused).toEqual([false, true, true]);
  });

  it('applies fault rules by route and counts the bytes a fault read', async () => {
    proxy.faults.add({ route: 'blob.putBlock', action: { kind: 'status', status: 408, afterBodyBytes: 32 * KIB } });
    const body = Buffer.alloc(256 * KIB);
    const outcome = await request(`${proxy.url}/a/b?comp=block&blockid=x`, {
      method: 'PUT',
      headers: { 'content-length': String(body.length) },
      body,
    }).then(
      async (r) => {
        await r.body.dump().catch(() => undefined);
        return r.statusCode;
      },
      (e: Error) => e.message,
    );
    expect([408, 'other side closed']).toContain(outcome);
    expect(proxy.faults.fired.at(-1)).toMatchObject({ route: 'blob.putBlock', action: 'status' });
    expect(proxy.stats.byRoute['blob.putBlock']!.bytesUp).toBeGreaterThanOrEqual(32 * KIB);
  });

  it('throttles the shared uplink', async () => {
    proxy.setThrottle(1024 * KIB);
    try {
      const body = Buffer.alloc(512 * KIB);
      const started = Date.now();
      await Promise.all(
        [1, 2].map(async () => {
          const res = await request(`${proxy.url}/t`, { method: 'PUT', headers: { 'content-length': String(body.length) }, body });
          await res.body.dump();
        }),
      );
      // 1 MiB in total at 1 MiB/s, shared by both requests.
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      proxy.setThrottle(undefined);
    }
  });

  it('answers 408 to requests that run past the timeout policy', async () => {
    const strict = await createFaultProxy({ target: upstreamUrl, throttleBytesPerSecond: 256 * KIB, timeoutPolicy: { respond408AfterMs: 300 } });
    try {
      const body = Buffer.alloc(512 * KIB);
      const started = Date.now();
      const outcome = await request(`${strict.url}/slow`, { method: 'PUT', headers: { 'content-length': String(body.length) }, body }).then(
        async (r) => {
          await r.body.dump().catch(() => undefined);
          return r.statusCode;
        },
        (e: Error) => e.message,
      );
      expect(outcome).toBe(408);
      expect(Date.now() - started).toBeLessThan(1500);
      // A fast request passes.
      const ok = await request(`${strict.url}/fast`);
      expect(ok.statusCode).toBe(201);
      await ok.body.dump();
    } finally {
      await strict.close();
    }
  });

  it('resets connections at seeded random byte counts when asked', async () => {
    const flaky = await createFaultProxy({ target: upstreamUrl, randomResets: { meanBytesBetween: 256 * KIB, seed: 3 } });
    try {
      let failures = 0;
      for (let i = 0; i < 8; i++) {
        const body = Buffer.alloc(128 * KIB);
        await request(`${flaky.url}/r${i}`, { method: 'PUT', headers: { 'content-length': String(body.length) }, body }).then(
          (r) => r.body.dump(),
          () => {
            failures += 1;
          },
        );
      }
      expect(flaky.stats.randomResets).toBeGreaterThan(0);
      expect(failures).toBe(flaky.stats.randomResets);
      // Bytes after a reset point never arrived: a reset request counts only what came before it.
      expect(flaky.stats.bytesUp).toBeLessThan(8 * 128 * KIB);
      expect(flaky.stats.bytesUp).toBeGreaterThanOrEqual((8 - failures) * 128 * KIB);
    } finally {
      await flaky.close();
    }
  });
});
