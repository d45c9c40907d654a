/**
 * Secret redaction shared by every module.
 *
 * Two layers: patterns that catch credentials by their shape (bearer headers, JWTs, SAS `sig`
 * parameters, basic-auth user info in URLs) and a process-wide set of exact secrets that the
 * client and the uploaders register when they are handed one. The set lives on `globalThis`
 * under a `Symbol.for` key so the ESM and CJS copies of this package share it.
 */

const SECRETS_KEY = Symbol.for('astro-deploy-sdk.secrets');

type SecretStore = Set<string>;

function secretStore(): SecretStore {
  const holder = globalThis as unknown as Record<symbol, SecretStore | undefined>;
  let store = holder[SECRETS_KEY];
  if (!store) {
    store = new Set<string>();
    holder[SECRETS_KEY] = store;
  }
  return store;
}

/** The placeholder that replaces every secret. */
export const REDACTED = '[REDACTED]';

/**
 * Remember a secret so that any later error message, event or log line that would contain it is
 * redacted. Short strings (under 8 characters) are ignored: redacting them would mangle ordinary
 * text and they are not credentials anyway.
 */
export function registerSecret(secret: string | undefined | null): void {
  if (!secret || secret.length < 8) return;
  const store = secretStore();
  // Bound the set: a long-lived process minting many SAS URLs must not grow without limit.
  if (store.size > 1000) {
    const oldest = store.values().next().value;
    if (oldest !== undefined) store.delete(oldest);
  }
  store.add(secret);
}

const SHAPE_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  // Authorization: Bearer <token> / Basic <creds>
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/g, `$1 ${REDACTED}`],
  // JSON Web Tokens (header.payload.signature, base64url), wherever they appear.
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Azure SAS signature and registry state tokens in query strings.
  [/([?&](?:sig|_state|password|token|access_token)=)[^&#\s"']+/gi, `$1${REDACTED}`],
  // user:password@ in URLs.
  [/(\/\/[^/\s:@]+:)[^@/\s]+@/g, `$1${REDACTED}@`],
];

/** Replace every known secret and every credential-shaped substring in `text`. */
export function redact(text: string): string {
  let out = text;
  for (const secret of secretStore()) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  for (const [pattern, replacement] of SHAPE_PATTERNS) {
    out = out.replace(pattern, replacement);
  }
  return out;
}

/** Redact the query string of a URL (keeps scheme, host and path readable for diagnostics). */
export function redactUrl(url: string | URL): string {
  return redact(String(url));
}

/**
 * Deep-copy a value with every string redacted. Used for event payloads and log records, which
 * are handed to caller code we do not control.
 */
export function redactDeep<T>(value: T, depth = 0): T {
  if (depth > 8) return value;
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1)) as T;
  if (value && typeof value === 'object' && !(value instanceof Error)) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v, depth + 1);
    return out as T;
  }
  return value;
}
