/**
 * Fault injection shared by the fake Astro server and the fault proxy.
 *
 * A {@link FaultInjector} holds rules; each incoming request is given a route name by the server
 * (for example `deploys.create` or `blob.putBlock`) and the first rule that matches it (and is due
 * by its `nth` counter) decides what goes wrong. {@link applyFault} then performs the fault on the
 * raw Node request/response pair, so the client sees real socket behaviour: resets, half-read
 * bodies, stalls and lost responses.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';

/** What goes wrong with a matching request. */
export type FaultAction =
  /** Answer with `status` (optionally after reading `afterBodyBytes` of the request body). */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string | object; afterBodyBytes?: number }
  /** Reset the connection (TCP RST) after `afterBodyBytes` of the request body (0: at once). */
  | { kind: 'reset'; afterBodyBytes?: number }
  /** Stop reading and never answer: the client must time out. The socket is closed on server close. */
  | { kind: 'stall' }
  /** Wait `ms`, then handle the request normally (not when the server closed in the meantime). */
  | { kind: 'delay'; ms: number }
  /** Handle the request normally (state changes happen), then reset instead of sending the response. */
  | { kind: 'dropResponse' }
  /**
   * Read the request, wait `ms`, then handle it normally even when the client has given up in the
   * meantime: the state change happens late (a server that acts after the client's per-try
   * timeout); the answer is sent only if the connection is still open. With `answer`, that status
   * is sent at once instead (a gateway that gave up waiting for the service, 504) and the service
   * still acts `ms` later. Fake Astro API routes only. A server closed in the meantime never acts.
   */
  | { kind: 'actLate'; ms: number; answer?: number }
  /** Read the request body at most `bytesPerSecond`, then handle it normally. */
  | { kind: 'throttle'; bytesPerSecond: number };

/** A rule: which requests, which of them, how many times, and what fault. */
export interface FaultRule {
  /** Route name (exact), or a RegExp tested against the route name and against `METHOD path?query`. @default every route */
  route?: string | RegExp;
  /** HTTP method filter, e.g. `PUT`. @default any */
  method?: string;
  /** Fire on the n-th matching request (1-based), counting from when the rule was added. @default 1 */
  nth?: number;
  /** How many consecutive matching requests (from `nth` on) get the fault. `Infinity` for all. @default 1 */
  times?: number;
  /** The fault. */
  action: FaultAction;
}

interface ActiveRule extends FaultRule {
  seen: number;
  fired: number;
}

/** A record of one fault that fired. */
export interface FiredFault {
  route: string;
  method: string;
  action: FaultAction['kind'];
}

/** Holds fault rules and decides which (if any) applies to a request. */
export class FaultInjector {
  private rules: ActiveRule[] = [];
  /** Every fault that fired, in order. */
  readonly fired: FiredFault[] = [];

  /** Add a rule. Returns a function that removes it. */
  add(rule: FaultRule): () => void {
    const active: ActiveRule = { ...rule, seen: 0, fired: 0 };
    this.rules.push(active);
    return () => {
      this.rules = this.rules.filter((r) => r !== active);
    };
  }

  /** Remove every rule. */
  clear(): void {
    this.rules = [];
  }

  /** Rules that still have faults to fire (for "no pending faults" assertions). */
  pending(): FaultRule[] {
    return this.rules.filter((r) => r.fired < (r.times ?? 1)).map(({ seen: _s, fired: _f, ...rule }) => rule);
  }

  /** The fault for this request, if any; advances the rules' counters. */
  match(route: string, method: string, pathAndQuery: string): FaultAction | undefined {
    let due: ActiveRule | undefined;
    // Every matching rule counts the request, so `nth` always means "the n-th such request"
    // even when another rule fired on an earlier one.
    for (const rule of this.rules) {
      if (rule.method && rule.method.toUpperCase() !== method.toUpperCase()) continue;
      if (rule.route !== undefined) {
        const ok =
          typeof rule.route === 'string'
            ? rule.route === route
            : rule.route.test(route) || rule.route.test(`${method} ${pathAndQuery}`);
        if (!ok) continue;
      }
      rule.seen += 1;
      if (!due && rule.seen >= (rule.nth ?? 1) && rule.fired < (rule.times ?? 1)) due = rule;
    }
    if (!due) return undefined;
    due.fired += 1;
    this.fired.push({ route, method, action: due.action.kind });
    return due.action;
  }
}

/** Read and discard up to `limit` bytes of the request body; resolves with what was read. */
function readBodyBytes(req: IncomingMessage, limit: number): Promise<number> {
  return new Promise((resolve) => {
    let count = 0;
    if (limit <= 0 || req.readableEnded) return resolve(0);
    const done = () => {
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      req.pause();
      resolve(count);
    };
    const onData = (chunk: Buffer) => {
      count += chunk.length;
      if (count >= limit) done();
    };
    req.on('data', onData);
    req.on('end', done);
    req.on('error', done);
  });
}

function resetSocket(req: IncomingMessage): void {
  const socket = req.socket as IncomingMessage['socket'] & { resetAndDestroy?: () => void };
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

/** The part of the normal handling that {@link applyFault} needs to call. */
export interface ProceedOptions {
  /** When set, the handler must not send its response but call this instead (lost response). */
  dropResponse?: boolean;
  /** When set, the request body should be read at this rate (bytes per second). */
  throttleBytesPerSecond?: number;
  /** The request body, when the fault has already read it (`actLate`). */
  body?: Buffer;
}

/**
 * Wait `ms`, unless `signal` aborts first (the server closed): true when the time passed. The
 * timer is cleared on abort, so a closed server holds no event loop open.
 */
function waitUnlessClosed(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Perform `action` on the request. `proceed` runs the normal handling; it is called for `delay`,
 * `actLate`, `dropResponse` and `throttle` faults and must honour the {@link ProceedOptions} it is
 * given. `signal` is the server's: once it aborts (the server closes), a `delay` or `actLate` still
 * waiting is cancelled, its timer cleared, and the request is never handled.
 */
export async function applyFault(
  action: FaultAction,
  req: IncomingMessage,
  res: ServerResponse,
  proceed: (options: ProceedOptions) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  switch (action.kind) {
    case 'status': {
      if (action.afterBodyBytes && action.afterBodyBytes > 0) await readBodyBytes(req, action.afterBodyBytes);
      const body =
        action.body === undefined ? '' : typeof action.body === 'string' ? action.body : JSON.stringify(action.body);
      const headers: Record<string, string | number> = {
        'content-length': Buffer.byteLength(body),
        ...(typeof action.body === 'object' ? { 'content-type': 'application/json' } : {}),
        ...action.headers,
      };
      // Closing the connection after an early answer mirrors proxies that time a request out:
      // the rest of the body is never read.
      if (!req.readableEnded) headers.connection = 'close';
      res.writeHead(action.status, headers);
      res.end(body);
      if (!req.readableEnded) req.resume();
      return;
    }
    case 'reset': {
      if (action.afterBodyBytes && action.afterBodyBytes > 0) await readBodyBytes(req, action.afterBodyBytes);
      resetSocket(req);
      return;
    }
    case 'stall': {
      req.pause();
      await new Promise<void>((resolve) => req.socket.once('close', () => resolve()));
      return;
    }
    case 'delay': {
      if (!(await waitUnlessClosed(action.ms, signal)) || req.socket.destroyed) return;
      return proceed({});
    }
    case 'dropResponse':
      return proceed({ dropResponse: true });
    case 'actLate': {
      const body = await readRequestBody(req);
      if (action.answer !== undefined) {
        const text = `${action.answer} ${STATUS_CODES[action.answer] ?? ''}`.trim();
        res.writeHead(action.answer, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), connection: 'close' });
        res.end(text);
      }
      if (!(await waitUnlessClosed(action.ms, signal))) return;
      // A handler sends nothing on a response the fault has already ended.
      return proceed({ body });
    }
    case 'throttle':
      return proceed({ throttleBytesPerSecond: action.bytesPerSecond });
  }
}

/**
 * Read the whole request body, at most `bytesPerSecond` when given (the `throttle` fault); rejects
 * when the client goes away mid-body. Shared by the fake servers.
 */
export function readRequestBody(req: IncomingMessage, bytesPerSecond?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const started = Date.now();
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (bytesPerSecond && bytesPerSecond > 0) {
        const due = started + (received / bytesPerSecond) * 1000;
        const wait = due - Date.now();
        if (wait > 0) {
          req.pause();
          setTimeout(() => req.resume(), wait);
        }
      }
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (e) => finish(e));
    req.once('close', () => {
      if (!req.complete) finish(new Error('client closed the connection mid-body'));
    });
  });
}

/** Reset the client connection instead of answering (the "lost response" fault). */
export function dropConnection(req: IncomingMessage): void {
  resetSocket(req);
}
