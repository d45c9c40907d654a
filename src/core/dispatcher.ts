/**
 * Which undici dispatcher carries a request. The caller's, when given (a flow started from
 * `AstroClient` hands the client's down to its uploads, pushes and polls); else, when
 * `HTTPS_PROXY`/`HTTP_PROXY` is set, one process-wide `EnvHttpProxyAgent` that honours them and
 * `NO_PROXY`, as the Astro CLI and the Azure SDKs do, so a deploy from behind a corporate proxy
 * just works; else undefined, which is undici's global dispatcher (so `setGlobalDispatcher` and
 * test interceptors apply).
 */
import { Dispatcher, EnvHttpProxyAgent, getGlobalDispatcher } from 'undici';

/**
 * An undici dispatcher, of undici 7 or 8: `Agent`, `Pool`, `ProxyAgent`, `EnvHttpProxyAgent`,
 * `MockAgent`, `RetryAgent`, or one composed with interceptors. Typed by the one method every
 * dispatcher has, so that a dispatcher from either major (or a copy of undici other than the
 * SDK's) type-checks; requests are then made through the dispatcher's own `request` method.
 */
export interface DispatcherLike {
  dispatch(options: unknown, handler: unknown): boolean;
}

/** Options of {@link httpRequest}: undici's request options, less the target (from the URL) and the dispatcher. */
export type HttpRequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path'>;

/**
 * One HTTP request through `given` (else the proxy of the environment, else undici's global
 * dispatcher), made with the dispatcher's own `request` method rather than undici's top-level
 * `request(url, { dispatcher })`. Undici 8 refuses the top-level functions of undici 7 ("opts.
 * dispatcher is not supported by instance methods"), and undici 7's request handler is not one
 * undici 8 accepts, so a dispatcher is only ever driven by the undici that made it. An object that
 * has `dispatch` but no `request` is driven by the SDK's undici 7.
 */
export function httpRequest(url: string | URL, options: HttpRequestOptions, given: DispatcherLike | undefined): Promise<Dispatcher.ResponseData> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const dispatcher = (resolveDispatcher(given) ?? getGlobalDispatcher()) as DispatcherLike & { request?: unknown };
  const opts: Dispatcher.RequestOptions = { ...options, origin: target.origin, path: `${target.pathname}${target.search}` };
  const request = (typeof dispatcher.request === 'function' ? dispatcher.request : Dispatcher.prototype.request) as (
    this: unknown,
    o: Dispatcher.RequestOptions,
  ) => Promise<Dispatcher.ResponseData>;
  return request.call(dispatcher, opts);
}

const PROXY_VARIABLES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'] as const;
const KEY_VARIABLES = [...PROXY_VARIABLES, 'NO_PROXY', 'no_proxy'] as const;

let fromEnvironment: { key: string; agent: Dispatcher } | undefined;

/** The proxy agent for the current proxy variables, or undefined when none is set. */
export function proxyDispatcherFromEnv(env: NodeJS.ProcessEnv = process.env): Dispatcher | undefined {
  if (!PROXY_VARIABLES.some((name) => env[name])) return undefined;
  const key = KEY_VARIABLES.map((name) => env[name] ?? '').join('\n');
  if (fromEnvironment?.key !== key) {
    // The agent of earlier variables may still carry requests; it closes when they end.
    const previous = fromEnvironment?.agent;
    fromEnvironment = { key, agent: new EnvHttpProxyAgent() };
    void previous?.close().catch(() => undefined);
  }
  return fromEnvironment.agent;
}

/** The dispatcher for a request: `given`, else the proxy from the environment, else undefined (global). */
export function resolveDispatcher(given: DispatcherLike | undefined): DispatcherLike | undefined {
  return given ?? proxyDispatcherFromEnv();
}
