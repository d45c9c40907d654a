/**
 * Which undici dispatcher carries a request. The caller's, when given (a flow started from
 * `AstroClient` hands the client's down to its uploads, pushes and polls); else, when
 * `HTTPS_PROXY`/`HTTP_PROXY` is set, one process-wide `EnvHttpProxyAgent` that honours them and
 * `NO_PROXY`, as the Astro CLI and the Azure SDKs do, so a deploy from behind a corporate proxy
 * just works; else undefined, which is undici's global dispatcher (so `setGlobalDispatcher` and
 * test interceptors apply).
 */
import { EnvHttpProxyAgent, type Dispatcher } from 'undici';

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
export function resolveDispatcher(given: Dispatcher | undefined): Dispatcher | undefined {
  return given ?? proxyDispatcherFromEnv();
}
