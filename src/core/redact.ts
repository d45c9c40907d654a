/**
 * Secret redaction shared by every module.
 *
 * Two layers: patterns that catch credentials by their shape (bearer headers, JWTs, SAS `sig`
 * parameters, basic-auth user info in URLs) and a process-wide set of exact secrets that the
 * client and the uploaders register when they are handed one. The set lives on `globalThis`
 * under a `Symbol.for` key so the ESM and CJS copies of this package share it.
 */

const SECRETS_KEY = Symbol.for('astro-deploy-sdk.secrets.v2');

/** Registered secrets (oldest first), each with the forms it is redacted in, longest first. */
type SecretStore = Map<string, readonly string[]>;

function secretStore(): SecretStore {
  const holder = globalThis as unknown as Record<symbol, SecretStore | undefined>;
  let store = holder[SECRETS_KEY];
  if (!store) {
    store = new Map<string, readonly string[]>();
    holder[SECRETS_KEY] = store;
  }
  return store;
}

/** The placeholder that replaces every secret. */
export const REDACTED = '[REDACTED]';

/** Most secrets remembered at once; the oldest is forgotten first. */
const MAX_SECRETS = 1000;
const MIN_SECRET_LENGTH = 8;

const lowerPercent = (s: string) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());

/**
 * The forms a secret travels in: verbatim; percent-encoded (`encodeURIComponent`) and
 * form-encoded (`+` for a space), each with upper- and lower-case `%xx`; JSON with `\/`-escaped
 * slashes; base64 (with and without padding) and base64url. At most 10 forms per secret.
 */
function formsOf(secret: string): string[] {
  const percent = encodeURIComponent(secret);
  const form = new URLSearchParams({ v: secret }).toString().slice(2);
  const json = JSON.stringify(secret).slice(1, -1);
  const b64 = Buffer.from(secret, 'utf8').toString('base64');
  const forms = new Set([
    secret,
    percent,
    lowerPercent(percent),
    form,
    lowerPercent(form),
    json,
    json.replace(/\//g, '\\/'),
    b64,
    b64.replace(/=+$/, ''),
    Buffer.from(secret, 'utf8').toString('base64url'),
  ]);
  return [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/**
 * Remember a secret so that any later error message, event or log line that would contain it is
 * redacted, verbatim or in an encoded form (see {@link formsOf}: URL and form encoding in either
 * hex case, JSON escaping, base64/base64url). A JWT also registers its signature segment alone:
 * a server echoing only that part still leaks a forgeable credential's proof. Short strings
 * (under 8 characters) are ignored: redacting them would mangle ordinary text and they are not
 * credentials anyway. At most 1000 secrets are kept, the oldest forgotten first.
 */
export function registerSecret(secret: string | undefined | null): void {
  if (!secret || secret.length < MIN_SECRET_LENGTH) return;
  const store = secretStore();
  if (store.has(secret)) {
    // Refresh: a secret in use again is the last to be forgotten.
    const forms = store.get(secret)!;
    store.delete(secret);
    store.set(secret, forms);
    return;
  }
  // Bound the set: a long-lived process minting many SAS URLs must not grow without limit.
  while (store.size >= MAX_SECRETS) {
    const oldest = store.keys().next().value;
    if (oldest === undefined) break;
    store.delete(oldest);
  }
  store.set(secret, formsOf(secret));
  const jwt = /^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)$/.exec(secret);
  if (jwt) registerSecret(jwt[1]);
}

const SHAPE_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  // Authorization: Bearer <token> / Basic <creds>
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/g, `$1 ${REDACTED}`],
  // JSON Web Tokens (header.payload.signature, base64url), wherever they appear.
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Azure SAS signature and registry state tokens in query strings.
  [/([?&](?:sig|_state|password|token|access_token)=)[^&#\s"']+/gi, `$1${REDACTED}`],
  // A SAS `sig=` anywhere else: at the start, after whitespace, a quote or a separator (a server
  // error body echoing ` sig=...`).
  [/(^|[\s"'(,;:])(sig=)(?!\[REDACTED\])[^&#\s"']+/gim, `$1$2${REDACTED}`],
  // user:password@ in URLs.
  [/(\/\/[^/\s:@]+:)[^@/\s]+@/g, `$1${REDACTED}@`],
];

/** Replace every known secret and every credential-shaped substring in `text`. */
export function redact(text: string): string {
  let out = text;
  for (const forms of secretStore().values()) {
    for (const form of forms) if (out.includes(form)) out = out.split(form).join(REDACTED);
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
