/**
 * What a registry holds of one blob, asked without uploading it: `HEAD` (is it there, how big),
 * cross-repository mounts, and the small helpers of the upload protocol's URLs and ranges.
 */
import { isAstroError } from '../core/errors.js';
import { withRetries, type RetryPolicy } from '../core/retry.js';
import { RegistryHttpError, responseHeader, type RegistryClient, type RegistryResponse } from './registry-client.js';

/** Parse `Range: 0-N` / `bytes=0-N` into the count of bytes held (N + 1). */
export function parseUploadRange(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const m = /^(?:bytes=)?\s*(\d+)-(\d+)\s*$/.exec(value);
  if (!m) return undefined;
  return Number(m[2]) + 1;
}

const REDIRECTS = [301, 302, 303, 307, 308];

/**
 * `HEAD` a blob: its size when the registry has it, else undefined. Retries transient failures.
 * A registry that keeps blobs in object storage (distribution with S3, GCS or Azure storage and
 * its default `redirect`) answers with a redirect to a signed URL there once it has found the
 * blob; that URL is asked for the size in turn (without the registry's credentials). When storage
 * does not tell, the blob counts as absent: pushing it again costs bytes, never a wrong manifest.
 */
export async function blobExists(client: RegistryClient, digest: string, options: { policy: RetryPolicy; signal?: AbortSignal | undefined }): Promise<number | undefined> {
  const sig = options.signal ? { signal: options.signal } : {};
  return withRetries(
    async () => {
      const res = await client.send({ method: 'HEAD', url: `/v2/${client.repository}/blobs/${digest}`, ...sig }, [200, 404, ...REDIRECTS]);
      if (res.status === 404) return undefined;
      if (res.status !== 200) {
        const location = responseHeader(res.headers, 'location');
        if (!location) return undefined;
        const stored = await client.send({ method: 'HEAD', url: new URL(location, res.url).toString(), ...sig }, [200, 400, 403, 404, 405]);
        return stored.status === 200 ? contentLength(stored) : undefined;
      }
      return contentLength(res) ?? 0;
    },
    { policy: options.policy, signal: options.signal },
  );
}

function contentLength(res: RegistryResponse): number | undefined {
  const len = Number(responseHeader(res.headers, 'content-length'));
  return Number.isFinite(len) && responseHeader(res.headers, 'content-length') !== undefined ? len : undefined;
}

/** What {@link mountBlob} achieved. */
export interface MountOutcome {
  /** The repository the blob was mounted from, when a mount happened. */
  from?: string;
  /** An upload session the registry opened instead of mounting (kept with `keepSession`). */
  location?: string;
}

/**
 * Try a cross-repository mount of `digest` from each of `sources` in turn (the target repository
 * itself is skipped). A registry that refuses a mount opens an ordinary upload session instead
 * (202): with `keepSession` the session is returned for the upload and no other source is tried;
 * without, it is cancelled and the next source tried. A failed attempt is not fatal (the blob is
 * then uploaded); typed errors (refused credentials) are.
 */
export async function mountBlob(
  client: RegistryClient,
  digest: string,
  sources: Iterable<string>,
  options: { keepSession: boolean; signal?: AbortSignal | undefined },
): Promise<MountOutcome> {
  const sig = options.signal ? { signal: options.signal } : {};
  for (const from of sources) {
    if (from === client.repository) continue;
    try {
      const res = await client.send(
        {
          method: 'POST',
          url: `/v2/${client.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
          headers: { 'content-length': '0' },
          ...sig,
        },
        [201, 202],
      );
      if (res.status === 201) return { from };
      if (options.keepSession) return { location: locationOf(res) };
      const loc = responseHeader(res.headers, 'location');
      if (loc) await client.send({ method: 'DELETE', url: new URL(loc, res.url).toString(), ...sig }, [200, 202, 204, 404]).catch(() => undefined);
    } catch (err) {
      if (isAstroError(err)) throw err;
    }
  }
  return {};
}

/** The absolute URL of an answer's `Location` (the upload session to continue). */
export function locationOf(res: RegistryResponse): string {
  const loc = responseHeader(res.headers, 'location');
  if (!loc) throw new RegistryHttpError('POST', new URL(res.url).pathname, res.status, undefined, 'no Location header in the answer');
  return new URL(loc, res.url).toString();
}

/** An upload URL with `digest=` set, for the commit. */
export function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}
