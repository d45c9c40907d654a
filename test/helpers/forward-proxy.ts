/**
 * A tiny counting HTTP forward proxy on loopback, for tests that check that requests honour
 * `HTTP_PROXY`/`HTTPS_PROXY` (or a proxy agent). It speaks both ways a client uses a proxy:
 * - `CONNECT host:port` tunnels (what undici's `ProxyAgent`/`EnvHttpProxyAgent` do by default,
 *   even for `http:` targets, and always for `https:`), relayed byte for byte;
 * - absolute-URI requests (`GET http://host:port/path`, what `ProxyAgent({ proxyTunnel: false })`
 *   and most other clients send for `http:` targets), forwarded with the body streamed.
 * It only ever connects to loopback targets (anything else gets 403), and counts what it carried.
 * Told to, it answers tunnel requests with an error status instead, as a proxy that is overloaded
 * (503) or wants credentials (407) does.
 */
import { STATUS_CODES, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { listenOnLoopback } from '../../src/testing/loopback.js';

/** What a {@link ForwardProxy} carried. */
export interface ForwardProxyStats {
  /** `CONNECT` tunnels opened. */
  tunnels: number;
  /** Absolute-URI requests forwarded. */
  requests: number;
  /** Bytes from clients to targets (request heads and bodies; tunnelled bytes included). */
  bytesUp: number;
  /** `host:port` of every tunnel or request, in order. */
  targets: string[];
  /** Requests or tunnels refused (not loopback, malformed, or told to by {@link ForwardProxy.refuseTunnels}). */
  refused: number;
}

/** A running forward proxy. */
export interface ForwardProxy {
  /** `http://127.0.0.1:<port>`: the value for `HTTP_PROXY`/`HTTPS_PROXY` or `ProxyAgent`. */
  url: string;
  stats: ForwardProxyStats;
  /** Tunnels plus forwarded requests. */
  readonly used: number;
  /**
   * Answer the next `times` tunnel requests with `status` (and `connection: close`) instead of
   * opening them, only those to `host` (`127.0.0.1:port`) when given; `refuseTunnels(0, 0)` stops
   * refusing. @default times 1, every host
   */
  refuseTunnels(status: number, times?: number, host?: string): void;
  resetStats(): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/** Start a forward proxy on `127.0.0.1` with a free port. */
export async function startForwardProxy(): Promise<ForwardProxy> {
  const stats: ForwardProxyStats = { tunnels: 0, requests: 0, bytesUp: 0, targets: [], refused: 0 };
  const refusal: { status: number; times: number; host?: string | undefined } = { status: 0, times: 0 };

  const server = createServer((req, res) => {
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      target = new URL('http://invalid.invalid');
    }
    if (target.protocol !== 'http:' || !isLoopback(target.hostname)) {
      stats.refused += 1;
      res.writeHead(403, { 'content-type': 'text/plain' }).end('forward proxy: loopback http targets only');
      return;
    }
    stats.requests += 1;
    stats.targets.push(target.host);
    req.on('data', (chunk: Buffer) => (stats.bytesUp += chunk.length));
    const upstream = httpRequest(
      { hostname: target.hostname, port: target.port || 80, method: req.method, path: `${target.pathname}${target.search}`, headers: forwardHeaders(req.headers) },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, forwardHeaders(upRes.headers));
        upRes.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
    });
    req.pipe(upstream);
  });

  server.on('connect', (req, client: Socket, head: Buffer) => {
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? '');
    if (!m || !isLoopback(m[1]!)) {
      stats.refused += 1;
      client.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (refusal.times > 0 && (refusal.host === undefined || refusal.host === req.url)) {
      refusal.times -= 1;
      stats.refused += 1;
      client.end(`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? 'Refused'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    stats.tunnels += 1;
    stats.targets.push(req.url!);
    const upstream = connect(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) {
        stats.bytesUp += head.length;
        upstream.write(head);
      }
      client.on('data', (chunk: Buffer) => (stats.bytesUp += chunk.length));
      client.pipe(upstream);
      upstream.pipe(client);
    });
    // `listening` is set before any connection can arrive.
    listening.track(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
  });
  const listening = await listenOnLoopback(server);
  return {
    url: listening.origin,
    stats,
    get used() {
      return stats.tunnels + stats.requests;
    },
    refuseTunnels(status, times = 1, host) {
      Object.assign(refusal, { status, times, host });
    },
    resetStats() {
      Object.assign(stats, { tunnels: 0, requests: 0, bytesUp: 0, targets: [], refused: 0 });
    },
    close: listening.close,
  };
}

/** Names of the proxy variables, upper and lower case. */
const PROXY_ENV = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'] as const;

/**
 * Run `fn` with exactly the proxy variables in `vars` set (every other proxy variable, including
 * `NO_PROXY`, unset), then restore the environment as it was, whatever `fn` does.
 */
export async function withProxyEnv<T>(vars: Partial<Record<(typeof PROXY_ENV)[number], string>>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(PROXY_ENV.map((k) => [k, process.env[k]]));
  for (const k of PROXY_ENV) delete process.env[k];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const k of PROXY_ENV) {
      const v = saved[k];
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
