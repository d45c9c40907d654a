/**
 * One rule for every URL the SDK sends a credential to (the API base URL with its bearer token,
 * an upload SAS URL whose query is the credential, a registry with Basic or Bearer auth): plain
 * `http://` only to a loopback host (127.0.0.0/8, `::1`, `localhost`) or with an explicit opt-in.
 * Anything else would put the credential on the network in clear text.
 *
 * The check looks at the URL's text only: it never resolves a name, so it runs before any
 * connection is attempted.
 */
import type { AstroError } from './errors.js';
import { redactUrl } from './redact.js';

/** The hostname of `host` (`name`, `name:port`, `[v6]`, `[v6]:port` or a bare `::1`), normalised by the WHATWG URL parser. */
function hostnameOf(host: string): string | undefined {
  const h = host.trim().toLowerCase();
  if (!h) return undefined;
  if (h === '::1') return '[::1]';
  try {
    return new URL(`http://${h}`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * True for a loopback host: `localhost`, an IPv4 address in 127.0.0.0/8 (in any form the URL parser
 * normalises, e.g. `127.1`) or IPv6 `::1` (bracketed or not). A port may follow. Names that merely
 * resolve to loopback (`*.localhost`, `/etc/hosts` entries) are not loopback here: no name is looked up.
 */
export function isLoopbackHost(host: string): boolean {
  const name = hostnameOf(host);
  if (name === undefined) return false;
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/**
 * Throw `makeError(message)` when `url` is plain `http://` to a host that is not loopback and
 * `allowInsecureHttp` is not set. `what` starts the message (e.g. `The Astro API baseUrl`). URLs
 * that do not parse, and schemes other than `http:`, are left to the caller's own validation.
 * The message shows the URL redacted (no SAS signature, no user info).
 */
export function assertSecureUrl(url: string | URL, what: string, allowInsecureHttp: boolean, makeError: (message: string) => AstroError): void {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return;
  }
  if (parsed.protocol !== 'http:' || allowInsecureHttp || isLoopbackHost(parsed.host)) return;
  const shown = redactUrl(`${parsed.protocol}//${parsed.host}${parsed.pathname}`);
  throw makeError(
    `${what} ${shown} uses plain http to a host that is not loopback: the credential sent with it would cross the network unencrypted. Use https:// (plain http is accepted only for 127.0.0.0/8, ::1 and localhost).`,
  );
}
