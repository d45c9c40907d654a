/**
 * A fault-injecting HTTP proxy on loopback, for testing uploads against a real upstream (Azurite,
 * the fake blob server, a registry) over a bad link.
 *
 * It forwards every request as is (method, path, headers, streamed body) to `target` and streams
 * the answer back, while it can:
 * - apply {@link FaultRule}s (408 before or after part of a body, resets mid-body, stalls, lost
 *   responses, 5xx, per-request throttling) through the shared `applyFault`;
 * - throttle the whole uplink (every request body shares one token bucket, like one slow link);
 * - answer 408 to any request still running after a time budget, as corporate proxies do;
 * - add response headers (e.g. `x-ms-version-id`, which Azurite never sends);
 * - count requests and body bytes up and down, per route, so tests can bound re-sent bytes.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './loopback.js';
import { Transform, type TransformCallback } from 'node:stream';
import { applyFault, dropConnection, FaultInjector, type FaultRule, type ProceedOptions } from './faults.js';
import { blobRouteOf } from './blob-routes.js';

/** Byte and request counters of a {@link FaultProxy}. */
export interface FaultProxyStats {
  /** Requests received. */
  requests: number;
  /** Request body bytes received from clients (what crossed the client's uplink), faults included. */
  bytesUp: number;
  /** Response bytes (headers excluded) sent to clients. */
  bytesDown: number;
  /** The same counters per route name. */
  byRoute: Record<string, { requests: number; bytesUp: number }>;
  /** Connections reset by `randomResets`. */
  randomResets: number;
}

/** Options of {@link createFaultProxy}. */
export interface FaultProxyOptions {
  /** Upstream origin, e.g. `http://127.0.0.1:10000`. */
  target: string;
  /** Rules added to the proxy's {@link FaultInjector} at start. */
  rules?: FaultRule[];
  /**
   * Name a request for fault rules and statistics.
   * @default Azure blob names (`blob.putBlob`, `blob.putBlock`, `blob.putBlockList`, `blob.getBlockList`, `blob.getBlob`, `blob.other`)
   */
  route?: (method: string, url: URL) => string;
  /** Extra response headers, computed per answered request. */
  injectHeaders?: (req: IncomingMessage, upstreamRes: IncomingMessage) => Record<string, string>;
  /** Limit of the shared uplink (all request bodies together), in bytes per second. @default unlimited */
  throttleBytesPerSecond?: number;
  /** Answer 408 (and close the connection) to any request whose response has not started after `respond408AfterMs`. */
  timeoutPolicy?: { respond408AfterMs: number };
  /**
   * A flaky link: reset the connection of whichever request body carries the byte at which a
   * random countdown (exponential, mean `meanBytesBetween`) runs out. Seeded, so two runs of the
   * same traffic see resets at the same byte counts. Only routes matching `routes` count. @default off
   */
  randomResets?: { meanBytesBetween: number; seed?: number; routes?: RegExp };
}

/** A running fault proxy. */
export interface FaultProxy {
  /** Origin of the proxy, e.g. `http://127.0.0.1:40123`: use it in place of the upstream origin. */
  url: string;
  /** Add or clear fault rules at any time. */
  faults: FaultInjector;
  /** Live counters. */
  stats: FaultProxyStats;
  /** Zero the counters. */
  resetStats(): void;
  /** Change the shared uplink limit (undefined: unlimited). */
  setThrottle(bytesPerSecond: number | undefined): void;
  /** Stop the proxy, drop every connection and cancel the faults still waiting (`delay`, `actLate`). */
  close(): Promise<void>;
}

/** The default route names: Azure blob operations, named as the fake blob service names them. */
export { blobRouteOf };

/**
 * A pacing schedule shared by several streams: each chunk is due when the link has carried the
 * bytes queued before it. No burst allowance, so short requests cannot jump a slow link.
 */
class TokenBucket {
  private nextFree = 0;
  constructor(public bytesPerSecond: number) {}
  /** Milliseconds to wait before `bytes` may pass. */
  reserve(bytes: number): number {
    const now = performance.now();
    const start = Math.max(now, this.nextFree);
    this.nextFree = start + (bytes / this.bytesPerSecond) * 1000;
    return this.nextFree - now;
  }
}

/** Passes chunks on no faster than the bucket allows, in slices so streams interleave fairly. */
class ThrottleStream extends Transform {
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly bucket: () => TokenBucket | undefined) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    const slice = 16 * 1024;
    const pushFrom = (at: number) => {
      if (at >= chunk.length) return callback();
      const bucket = this.bucket();
      const part = chunk.subarray(at, Math.min(chunk.length, at + slice));
      if (!bucket) {
        this.push(chunk.subarray(at));
        return callback();
      }
      const wait = bucket.reserve(part.length);
      const go = () => {
        this.timer = undefined;
        this.push(part);
        pushFrom(at + part.length);
      };
      if (wait > 1) this.timer = setTimeout(go, wait);
      else go();
    };
    pushFrom(0);
  }
  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    callback(error);
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** Start a fault proxy on `127.0.0.1` with a free port in front of `options.target`. */
export async function createFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const routeOf = options.route ?? blobRouteOf;
  const faults = new FaultInjector();
  for (const rule of options.rules ?? []) faults.add(rule);
  const stats: FaultProxyStats = { requests: 0, bytesUp: 0, bytesDown: 0, byRoute: {}, randomResets: 0 };
  const chaos = options.randomResets;
  // mulberry32: small, seedable, good enough to place faults.
  let seed = (chaos?.seed ?? 1) >>> 0;
  const random = () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const nextReset = () => (chaos ? Math.max(1, Math.round(-Math.log(1 - random()) * chaos.meanBytesBetween)) : Infinity);
  let bytesToReset = nextReset();
  let linkBucket = options.throttleBytesPerSecond ? new TokenBucket(options.throttleBytesPerSecond) : undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  function countUp(route: string, bytes: number): void {
    stats.bytesUp += bytes;
    const r = (stats.byRoute[route] ??= { requests: 0, bytesUp: 0 });
    r.bytesUp += bytes;
  }

  /**
   * Count body bytes as they arrive from the socket, whoever reads them (a fault that drains the
   * body, or the forwarder): patching `push` sees them without consuming or resuming the stream.
   */
  function countBody(req: IncomingMessage, route: string): void {
    const push = req.push.bind(req);
    const flaky = chaos !== undefined && (chaos.routes === undefined || chaos.routes.test(route));
    let cut = false;
    req.push = (chunk: unknown, encoding?: BufferEncoding) => {
      // The link died at the reset byte: what the socket delivers after it never arrived (on
      // loopback a whole block can be buffered before the reset below takes effect).
      if (cut) return false;
      if (Buffer.isBuffer(chunk)) {
        if (flaky && bytesToReset <= chunk.length) {
          const arrived = chunk.subarray(0, bytesToReset);
          bytesToReset = nextReset();
          stats.randomResets += 1;
          cut = true;
          countUp(route, arrived.length);
          setImmediate(() => dropConnection(req));
          return push(arrived, encoding);
        }
        countUp(route, chunk.length);
        if (flaky) bytesToReset -= chunk.length;
      }
      return push(chunk, encoding);
    };
  }

  function forward(req: IncomingMessage, res: ServerResponse, route: string, proceed: ProceedOptions): Promise<void> {
    return new Promise<void>((resolve) => {
      const requestBucket = proceed.throttleBytesPerSecond ? new TokenBucket(proceed.throttleBytesPerSecond) : undefined;
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (finished) return;
        finished = true;
        if (timer) clearTimeout(timer);
        resolve();
      };
      const upstream = httpRequest({
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: forwardHeaders(req.headers),
        agent,
      });
      if (options.timeoutPolicy) {
        timer = setTimeout(() => {
          if (res.headersSent || finished) return;
          // Like a proxy whose request timer ran out: give up on the upstream, answer 408, hang up.
          upstream.destroy();
          const body = 'Request Timeout';
          res.writeHead(408, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' });
          res.end(body, () => setTimeout(() => req.socket.destroy(), 20));
          done();
        }, options.timeoutPolicy.respond408AfterMs);
      }
      upstream.on('response', (upRes) => {
        if (finished) {
          upRes.resume();
          return;
        }
        if (proceed.dropResponse) {
          // The upstream did the work; the client never hears about it.
          upRes.resume();
          upRes.on('end', () => {
            dropConnection(req);
            done();
          });
          return;
        }
        const headers = { ...forwardHeaders(upRes.headers), ...(options.injectHeaders?.(req, upRes) ?? {}) };
        res.writeHead(upRes.statusCode ?? 502, headers);
        upRes.on('data', (chunk: Buffer) => {
          stats.bytesDown += chunk.length;
        });
        upRes.pipe(res);
        upRes.on('end', done);
        upRes.on('error', () => {
          res.destroy();
          done();
        });
      });
      upstream.on('error', () => {
        if (finished) return;
        // The upstream failed (or was destroyed by us): the client sees a dropped connection.
        if (!res.headersSent) dropConnection(req);
        else res.destroy();
        done();
      });
      const throttle = new ThrottleStream(() => requestBucket ?? linkBucket);
      req.on('close', () => {
        if (!req.complete && !finished) {
          // The client went away mid-body: make the upstream see a truncated request too.
          upstream.destroy();
          done();
        }
      });
      req.pipe(throttle).pipe(upstream);
      res.on('close', done);
    });
  }

  /** Aborted by close(): a `delay` or `actLate` still waiting is cancelled, its timer cleared. */
  const closing = new AbortController();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy.invalid');
    const route = routeOf(req.method ?? 'GET', url);
    stats.requests += 1;
    (stats.byRoute[route] ??= { requests: 0, bytesUp: 0 }).requests += 1;
    countBody(req, route);
    const action = faults.match(route, req.method ?? 'GET', `${url.pathname}${url.search}`);
    const run = action ? applyFault(action, req, res, (proceed) => forward(req, res, route, proceed), closing.signal) : forward(req, res, route, {});
    run.catch(() => {
      if (!res.headersSent) res.destroy();
    });
  });
  const listener = await listenOnLoopback(server);

  return {
    url: listener.origin,
    faults,
    stats,
    resetStats() {
      stats.requests = 0;
      stats.bytesUp = 0;
      stats.bytesDown = 0;
      stats.byRoute = {};
      stats.randomResets = 0;
    },
    setThrottle(bytesPerSecond) {
      linkBucket = bytesPerSecond ? new TokenBucket(bytesPerSecond) : undefined;
    },
    close: () => {
      closing.abort();
      agent.destroy();
      return listener.close();
    },
  };
}
