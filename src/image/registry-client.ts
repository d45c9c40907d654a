/**
 * HTTP to an OCI distribution registry over undici, with the registry's auth schemes:
 * - Basic: every request to the registry's origin carries the credentials;
 * - Bearer: a `401` with `WWW-Authenticate: Bearer realm,service,scope` sends us to the token
 *   endpoint (with Basic credentials when we have them) for the scopes we need, including
 *   `repository:<from>:pull` for cross-repository mounts; tokens are refreshed on a later `401`.
 * Credentials never leave the registry's origin (upload `Location`s may point at object storage),
 * and every secret is registered for redaction before the first request.
 */
import { Readable, Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { linkSignals, throwIfAborted } from '../core/abort.js';
import { httpRequest, type DispatcherLike } from '../core/dispatcher.js';
import { ErrorCodes, ImageError } from '../core/errors.js';
import { finalProxyRefusalHint, isTransientFailure, isTransientStatus, statusFailure, transportFailure, withFailure, type Failure } from '../core/failure.js';
import { redact, registerSecret } from '../core/redact.js';
import { abortAware } from '../core/scope.js';
import { assertSecureUrl } from '../core/url-safety.js';
import type { RegistryAuth } from './types.js';

/**
 * A registry answered with an unexpected status. Carries the SDK's failure shape (status and
 * `Retry-After`; read it with `failureOf`), so the retry policy treats it like any HTTP edge's.
 */
export class RegistryHttpError extends Error {
  override readonly name = 'RegistryHttpError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    /** `errors[0].code` of the registry's error body. */
    readonly registryCode: string | undefined,
    readonly detail: string,
    headers?: RegistryResponse['headers'],
  ) {
    super(redact(`${method} ${path} answered ${status}${registryCode ? ` ${registryCode}` : ''}${detail ? `: ${detail}` : ''}`));
    withFailure(this, statusFailure(status, headers));
  }
}

/**
 * The request never got a (complete) response: no connection, reset, timed out or stalled. Its
 * failure shape (`failureOf`) says which; `kind` repeats it for messages.
 */
export class RegistryTransportError extends Error {
  override readonly name = 'RegistryTransportError';
  readonly kind: Failure['kind'];
  constructor(
    readonly method: string,
    readonly path: string,
    failure: Failure,
    cause: unknown,
  ) {
    super(redact(`${method} ${path} failed (${failure.kind}): ${(cause as Error)?.message ?? String(cause)}`), { cause });
    this.kind = failure.kind;
    withFailure(this, failure);
  }
}

/** A response with its body read (registry bodies are small JSON; blobs are never downloaded). */
export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Absolute URL the request went to. */
  url: string;
}

/** Body of a request: made anew for every attempt, so a retry can replay it. */
export type BodyFactory = () => Readable | Buffer | string;

/** One request. */
export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path under the registry (`/v2/...`) or an absolute URL (an upload `Location`). */
  url: string;
  headers?: Record<string, string>;
  body?: BodyFactory;
  /** Time allowed for the response headers once the body is sent, in milliseconds. */
  responseTimeoutMs?: number;
  /** Time a request body may make no progress before the request is abandoned, in milliseconds. */
  stallTimeoutMs?: number;
  /** Called with each body chunk as undici takes it (for byte counting). */
  onBodyBytes?: (bytes: number) => void;
  signal?: AbortSignal;
}

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** `host[:port]` of the registry. */
  host: string;
  /** Repository pushed to (path after the host). */
  repository: string;
  /** Use `http://` instead of `https://`; only for a loopback host (127.0.0.0/8, `::1`, `localhost`), others throw `ASTRO_INSECURE_URL`. @default true only for loopback hosts */
  plainHttp?: boolean;
  auth?: RegistryAuth;
  /**
   * undici dispatcher for every request (registry, token service, upload `Location`s), e.g. with a
   * proxy or custom TLS. @default `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` when set, else undici's
   * global dispatcher (see `resolveDispatcher`)
   */
  dispatcher?: DispatcherLike;
  /** Repositories to request `pull` on, for cross-repository mounts. */
  mountSources?: string[];
  /** Default response timeout, in milliseconds. @default 60000 */
  requestTimeoutMs?: number;
}

const isLoopbackHost = (host: string) => /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i.test(host);

/** Parse `WWW-Authenticate` (`Bearer realm="...",service="...",scope="..."`). */
export function parseChallenge(header: string | string[] | undefined): { scheme: string; params: Record<string, string> } | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  if (!raw) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(raw);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}

function header(headers: RegistryResponse['headers'], name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
export { header as responseHeader };

/** Watches a request body: counts bytes and fires `onStall` when nothing moves for `stallMs`. */
class BodyWatch {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly stallMs: number,
    private readonly onStall: () => void,
  ) {}
  arm(): void {
    this.disarm();
    this.timer = setTimeout(this.onStall, this.stallMs);
    this.timer.unref?.();
  }
  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Talks to one repository of one registry. */
export class RegistryClient {
  readonly baseUrl: string;
  readonly host: string;
  readonly repository: string;
  private readonly givenDispatcher: DispatcherLike | undefined;
  private readonly auth: RegistryAuth | undefined;
  private readonly basicHeader: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly mountSources: string[];
  /** `basic` once a Basic challenge was seen; `bearer` once a token was obtained. */
  private scheme: 'none' | 'basic' | 'bearer' = 'none';
  private bearer: { realm: string; service: string | undefined; token: string; expiresAt: number } | undefined;
  private tokenInFlight: Promise<void> | undefined;

  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.repository = options.repository;
    const plain = options.plainHttp ?? isLoopbackHost(options.host);
    this.baseUrl = `${plain ? 'http' : 'https'}://${options.host}`;
    assertSecureUrl(this.baseUrl, 'The registry', false, (message) => new ImageError(ErrorCodes.INSECURE_URL, `${message} plainHttp is refused for it.`));
    // No private pool: requests go through the caller's dispatcher, the proxy of the environment or
    // undici's global one (so `setGlobalDispatcher` applies). Each request sets its own timeouts,
    // and the global pool's idle sockets close after its keep-alive (4 s), so the process exits.
    this.givenDispatcher = options.dispatcher;
    this.auth = options.auth;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.mountSources = options.mountSources ?? [];
    if (this.auth) {
      registerSecret(this.auth.password);
      this.basicHeader = `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}`;
      registerSecret(this.basicHeader.slice(6));
    }
  }

  /** Nothing to release (the client owns no connection pool); kept so callers can end its use explicitly. */
  async close(): Promise<void> {}

  /** Scopes to ask the token server for. */
  private scopes(challengeScope: string | undefined): string[] {
    const wanted = new Set<string>([`repository:${this.repository}:pull,push`]);
    for (const from of this.mountSources) if (from !== this.repository) wanted.add(`repository:${from}:pull`);
    // The registry's own scope(s) for the failing request, which may name other actions.
    for (const s of (challengeScope ?? '').split(' ').filter(Boolean)) wanted.add(s);
    return [...wanted];
  }

  private authHeaderFor(url: URL): string | undefined {
    // Never hand credentials to another origin (object storage behind a redirect or Location).
    if (url.origin !== new URL(this.baseUrl).origin) return undefined;
    if (this.scheme === 'bearer' && this.bearer) return `Bearer ${this.bearer.token}`;
    if (this.scheme === 'basic') return this.basicHeader;
    return undefined;
  }

  private async fetchToken(params: Record<string, string>, signal?: AbortSignal): Promise<void> {
    const realm = params.realm;
    if (!realm) throw this.authError('the registry sent a Bearer challenge without a realm');
    const url = new URL(realm);
    if (params.service) url.searchParams.set('service', params.service);
    for (const s of this.scopes(params.scope)) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    // Only over TLS or to loopback: Basic credentials in clear text elsewhere would leak the token.
    if (this.basicHeader && (url.protocol === 'https:' || isLoopbackHost(url.host))) headers.authorization = this.basicHeader;
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await httpRequest(
        url,
        { method: 'GET', headers, signal, headersTimeout: this.requestTimeoutMs, bodyTimeout: this.requestTimeoutMs },
        this.givenDispatcher,
      );
      // Read inside the try: an abort (or a reset) while the body arrives must not escape as
      // undici's raw error.
      text = await res.body.text();
    } catch (err) {
      if (signal?.aborted) throw abortAware(err, signal);
      const failure = transportFailure(err);
      const proxyHint = finalProxyRefusalHint(failure);
      throw withFailure(
        new ImageError(
          ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE,
          `Cannot reach the registry's token service ${url.origin}: ${(err as Error).message}${proxyHint ? `. ${proxyHint}` : ''}`,
          undefined,
          { cause: err, retryable: isTransientFailure(failure) },
        ),
        failure,
      );
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw this.authError(
        `the token service refused the credentials (HTTP ${res.statusCode})` +
          (this.auth ? '' : '; no credentials were given (pass auth: { username, password })'),
      );
    }
    if (res.statusCode >= 400) {
      throw withFailure(
        new ImageError(ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE, `The registry's token service answered HTTP ${res.statusCode}.`, undefined, {
          retryable: isTransientStatus(res.statusCode),
        }),
        statusFailure(res.statusCode, res.headers),
      );
    }
    let json: { token?: string; access_token?: string; expires_in?: number };
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      throw this.authError('the token service answered something that is not JSON');
    }
    const token = json.token ?? json.access_token;
    if (!token) throw this.authError('the token service answered without a token');
    registerSecret(token);
    // Tokens live at least 60 s (spec); refresh a little early.
    const lifetimeS = Math.max(60, Number(json.expires_in) || 60);
    this.bearer = { realm, service: params.service, token, expiresAt: Date.now() + (lifetimeS - 10) * 1000 };
    this.scheme = 'bearer';
  }

  private authError(why: string): ImageError {
    return new ImageError(
      ErrorCodes.IMAGE_REGISTRY_AUTH,
      `Registry authentication with ${this.host} failed: ${why}. On Astro, the user is "cli" and the password an API token ` +
        'with permission to deploy to this deployment; check that the token is valid and not expired.',
      `${this.host}/${this.repository}`,
    );
  }

  /** React to a 401: pick up Basic, or get a (new) Bearer token. Returns false when nothing more can be tried. */
  private async handleChallenge(res: RegistryResponse, signal?: AbortSignal): Promise<boolean> {
    const challenge = parseChallenge(res.headers['www-authenticate']);
    if (!challenge) return false;
    if (challenge.scheme === 'basic') {
      if (!this.basicHeader || this.scheme === 'basic') return false;
      this.scheme = 'basic';
      return true;
    }
    if (challenge.scheme === 'bearer') {
      // Concurrent uploads that all hit 401 share one token request.
      this.tokenInFlight ??= this.fetchToken(challenge.params, signal).finally(() => (this.tokenInFlight = undefined));
      await this.tokenInFlight;
      return true;
    }
    return false;
  }

  /** Probe `GET /v2/` and authenticate up front, so later streamed bodies are not sent twice. */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.send({ method: 'GET', url: '/v2/', ...(signal ? { signal } : {}) }, [200]);
  }

  /**
   * Send a request; answers `401` by authenticating and trying once more. Resolves with any
   * response whose status is in `expect`; throws {@link RegistryHttpError} for others (after
   * reading the registry's error code), {@link RegistryTransportError} when no response came,
   * {@link ImageError} `ASTRO_IMAGE_REGISTRY_AUTH` for refused credentials.
   */
  async send(req: RegistryRequest, expect: number[]): Promise<RegistryResponse> {
    if (this.scheme === 'bearer' && this.bearer && Date.now() > this.bearer.expiresAt) {
      // Refresh before it expires mid-upload rather than after a failed PATCH.
      await this.fetchToken({ realm: this.bearer.realm, ...(this.bearer.service ? { service: this.bearer.service } : {}) }, req.signal);
    }
    let res = await this.once(req);
    if (res.status === 401 && (await this.handleChallenge(res, req.signal))) res = await this.once(req);
    if (res.status === 401) {
      throw this.authError(this.auth ? 'the registry refused the credentials (HTTP 401)' : 'the registry requires credentials (HTTP 401)');
    }
    if (!expect.includes(res.status)) throw this.httpError(req, res);
    return res;
  }

  private httpError(req: RegistryRequest, res: RegistryResponse): Error {
    let code: string | undefined;
    let detail = '';
    try {
      const json = JSON.parse(res.body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
      code = json.errors?.[0]?.code;
      detail = json.errors?.[0]?.message ?? '';
    } catch {
      detail = res.body.toString('utf8').slice(0, 200);
    }
    const path = new URL(res.url).pathname;
    const err = new RegistryHttpError(req.method, path, res.status, code, detail, res.headers);
    if (res.status === 403 || code === 'DENIED') {
      return new ImageError(
        ErrorCodes.IMAGE_REGISTRY_AUTH,
        `The registry ${this.host} denied ${req.method} on ${this.repository} (HTTP ${res.status}${code ? ` ${code}` : ''}). ` +
          'The credentials are valid but may not push to this repository: on Astro use an API token of the deployment\'s ' +
          'workspace or organization with deploy permission.',
        `${this.host}/${this.repository}`,
        { cause: err },
      );
    }
    return err;
  }

  private resolveUrl(url: string): URL {
    return new URL(url, this.baseUrl);
  }

  /** One attempt, without auth handling. */
  private async once(req: RegistryRequest): Promise<RegistryResponse> {
    throwIfAborted(req.signal);
    const url = this.resolveUrl(req.url);
    const headers: Record<string, string> = { ...req.headers };
    const auth = this.authHeaderFor(url);
    if (auth) headers.authorization = auth;
    // The caller's signal, or our own when the body stalls.
    const stall = new AbortController();
    const linked = linkSignals(req.signal, stall.signal);
    let stalled = false;
    const stallMs = req.stallTimeoutMs ?? this.requestTimeoutMs;
    const watch = new BodyWatch(stallMs, () => {
      stalled = true;
      stall.abort(new Error(`no progress for ${stallMs} ms`));
    });
    let body: Readable | Buffer | string | undefined;
    if (req.body) {
      const made = req.body();
      if (made instanceof Readable) {
        // Count and watch what undici actually pulls from the body (a 'data' listener on the
        // source itself would switch it to flowing mode and lose bytes).
        const counter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            req.onBodyBytes?.(chunk.length);
            watch.arm();
            cb(null, chunk);
          },
        });
        made.once('error', (err) => counter.destroy(err));
        counter.once('close', () => {
          if (!made.destroyed) made.destroy();
        });
        made.pipe(counter);
        body = counter;
      } else {
        body = made;
      }
    }
    watch.arm();
    const responseTimeoutMs = req.responseTimeoutMs ?? this.requestTimeoutMs;
    try {
      // The dispatcher is resolved per request (the proxy variables may change).
      const res = await httpRequest(
        url,
        {
          method: req.method,
          headers,
          body: body ?? null,
          signal: linked.signal,
          // undici refreshes this timer while the body is being written, so it bounds the wait for
          // the response, not the upload.
          headersTimeout: responseTimeoutMs,
          bodyTimeout: responseTimeoutMs,
        },
        this.givenDispatcher,
      );
      watch.disarm();
      if (body !== undefined && !(body instanceof Readable)) req.onBodyBytes?.(Buffer.byteLength(body));
      const chunks: Buffer[] = [];
      if (req.method !== 'HEAD') for await (const c of res.body) chunks.push(Buffer.from(c as Uint8Array));
      else await res.body.dump();
      // An early answer (401, 408...) leaves the rest of the body unsent: stop reading the source.
      if (body instanceof Readable && !body.readableEnded) body.destroy();
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), url: url.toString() };
    } catch (err) {
      watch.disarm();
      if (body instanceof Readable) body.destroy();
      if (req.signal?.aborted) throw abortAware(err, req.signal);
      throw new RegistryTransportError(req.method, url.pathname, transportFailure(err, { timedOut: stalled }), err);
    } finally {
      linked.dispose();
    }
  }
}
