/**
 * What the phases of one native push share (see `push-native.ts` for the phases), and the one
 * mapping of whatever escapes them into an `ImageError`.
 */
import type { Emit } from '../core/emitter.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { failureOf, finalProxyRefusalHint, isTransientFailure, isTransientStatus } from '../core/failure.js';
import type { RetryPolicy } from '../core/retry.js';
import type { BlobUploadOptions } from './blob-upload.js';
import type { LayerCompression } from './layout.js';
import { RegistryHttpError, RegistryTransportError, type RegistryClient } from './registry-client.js';
import type { ImageEvent, PushedLayer } from './types.js';

/** The state every phase of a push reads. */
export interface PushContext {
  registry: RegistryClient;
  /** `repository:tag` being pushed. */
  reference: string;
  /** `host/path` pushed to (what the layer cache records). */
  location: string;
  /** The push's scope signal: the caller's abort, or a failure of another part of the push. */
  signal: AbortSignal;
  emit: Emit<ImageEvent>;
  policy: RetryPolicy;
  /** Options of every blob upload (retries, timeouts, the shared chunk sizer, the listener). */
  upload: BlobUploadOptions;
}

/** What became of one layer. */
export interface LayerOutcome {
  digest: string;
  size: number;
  compression: LayerCompression;
  status: PushedLayer['status'];
  bytesSent: number;
}

/** Anything that escaped a push step, as an ImageError (typed SDK errors pass unchanged). */
export function toPushError(err: unknown, reference: string, what: string): unknown {
  if (isAstroError(err)) return err;
  if (err instanceof RegistryTransportError) {
    const failure = failureOf(err);
    const proxyHint = finalProxyRefusalHint(failure);
    return new ImageError(
      failure?.kind === 'connect' || proxyHint !== undefined ? ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE : ErrorCodes.IMAGE_PUSH_FAILED,
      `${what} ${reference} failed: ${err.message}. ${proxyHint ?? 'Check that the registry is reachable and try again.'}`,
      reference,
      { cause: err, retryable: isTransientFailure(failure) },
    );
  }
  if (err instanceof RegistryHttpError) {
    return new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `${what} ${reference} failed: ${err.message}.`, reference, {
      cause: err,
      retryable: isTransientStatus(err.status),
    });
  }
  return new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `${what} ${reference} failed: ${(err as Error)?.message ?? String(err)}`, reference, { cause: err });
}
