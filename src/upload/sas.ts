/**
 * Reading a blob SAS URL: what it allows, when it expires and which size limits its service
 * version (`sv`) imposes. With a SAS the `sv` parameter, not an `x-ms-version` header, decides
 * which service version handles the request, so the limits come from it.
 */
import { ErrorCodes, UploadError } from '../core/errors.js';
import { redactUrl, registerSecret } from '../core/redact.js';
import { assertSecureUrl } from '../core/url-safety.js';

const MIB = 1024 * 1024;

/** What the uploader needs to know about a blob SAS URL. */
export interface BlobSas {
  /** The full URL, SAS included (never put this in a message: use {@link BlobSas.displayUrl}). */
  url: URL;
  /** `scheme://host/path` without the query string, safe to show and to key the journal on. */
  displayUrl: string;
  /** Signed permissions (`sp`), e.g. `cw` or `rcw`. Empty when absent. */
  permissions: string;
  /** Signed expiry (`se`), when present and parseable. */
  expiresAt: Date | undefined;
  /** Largest block a Put Block may carry under this `sv`, in bytes. */
  maxBlockBytes: number;
  /** Largest single Put Blob under this `sv`, in bytes. */
  maxPutBlobBytes: number;
}

/** Per-`sv` limits (service versions compare as ISO dates). */
function limitsFor(sv: string | null): { maxBlockBytes: number; maxPutBlobBytes: number } {
  // No sv means the account's default version, which is recent on every account that has versioning.
  if (!sv || sv >= '2019-12-12') return { maxBlockBytes: 4000 * MIB, maxPutBlobBytes: 5000 * MIB };
  if (sv >= '2016-05-31') return { maxBlockBytes: 100 * MIB, maxPutBlobBytes: 256 * MIB };
  return { maxBlockBytes: 4 * MIB, maxPutBlobBytes: 64 * MIB };
}

/**
 * Parse and check a blob SAS URL and register its signature as a secret so it is redacted from
 * every message. Throws `ASTRO_UPLOAD_INVALID_URL` for anything that is not an http(s) blob URL,
 * and for a plain `http://` URL to a host that is not loopback (127.0.0.0/8, `::1`, `localhost`):
 * the SAS would cross the network in clear text. There is no opt-in; Azure storage always speaks
 * https, and Azurite or a local fake listen on loopback.
 */
export function parseBlobSas(sasUrl: string): BlobSas {
  let url: URL;
  try {
    url = new URL(sasUrl);
  } catch {
    throw new UploadError(
      ErrorCodes.UPLOAD_INVALID_URL,
      `The upload URL is not a valid URL (${redactUrl(sasUrl).slice(0, 200)}). Pass the blob SAS URL Astro returned (dagsUploadUrl).`,
    );
  }
  const sig = url.searchParams.get('sig');
  registerSecret(sig);
  // The raw (still percent-encoded) form can appear in logs of the URL too.
  const rawSig = /[?&]sig=([^&#]+)/.exec(url.search)?.[1];
  if (rawSig && rawSig !== sig) registerSecret(rawSig);
  const displayUrl = `${url.origin}${url.pathname}`;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UploadError(ErrorCodes.UPLOAD_INVALID_URL, `The upload URL ${displayUrl} must be http(s).`);
  }
  // The SAS in the query is the credential: plain http only to loopback (Azurite, a local fake).
  assertSecureUrl(url, 'The upload URL', false, (message) => new UploadError(ErrorCodes.UPLOAD_INVALID_URL, message));
  if (url.pathname.split('/').filter(Boolean).length < 2) {
    throw new UploadError(
      ErrorCodes.UPLOAD_INVALID_URL,
      `The upload URL ${displayUrl} does not name a blob (expected /<container>/<blob>).`,
    );
  }
  const se = url.searchParams.get('se');
  const expires = se ? new Date(se) : undefined;
  return {
    url,
    displayUrl,
    permissions: url.searchParams.get('sp') ?? '',
    expiresAt: expires && !Number.isNaN(expires.getTime()) ? expires : undefined,
    ...limitsFor(url.searchParams.get('sv')),
  };
}

/** True when the SAS allows reads (`r`), so Get Block List can be used to resume. */
export function sasAllowsRead(sas: BlobSas): boolean {
  return sas.permissions.includes('r');
}

/**
 * A URL for one blob operation: the SAS URL with extra query parameters appended. The SAS part is
 * kept byte for byte (re-serialising it could change its encoding).
 */
export function operationUrl(sas: BlobSas, params: Record<string, string>): string {
  const base = sas.url.href.replace(/#.*$/, '');
  const extra = Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  if (!extra) return base;
  return base + (sas.url.search ? '&' : '?') + extra;
}
