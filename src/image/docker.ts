/**
 * Docker Engine API access through dockerode, and the translation of its failures into typed
 * errors: "no daemon" and "no such image" are the two a user can act on, so they get their own
 * codes and messages.
 */
import Dockerode from 'dockerode';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';

let defaultClient: Dockerode | undefined;

/**
 * The client to use: the caller's, else one built from `DOCKER_HOST` (dockerode reads it, falling
 * back to `/var/run/docker.sock`). The default client is created once per process.
 */
export function dockerClient(docker?: Dockerode): Dockerode {
  if (docker) return docker;
  defaultClient ??= new Dockerode();
  return defaultClient;
}

function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EPERM', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE']);

/** True when `err` means the daemon could not be reached at all. */
export function isDockerUnreachable(err: unknown): boolean {
  const code = errno(err);
  return code !== undefined && UNREACHABLE.has(code);
}

/** The error thrown when the daemon does not answer. */
export function dockerUnavailable(err: unknown, what: string): ImageError {
  const host = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  return new ImageError(
    ErrorCodes.IMAGE_DOCKER_UNAVAILABLE,
    `Cannot reach the Docker daemon (${host}) to ${what}: ${(err as Error)?.message ?? String(err)}. ` +
      'Start Docker (or set DOCKER_HOST), or pass an image archive made with `docker save` instead of an image name.',
    undefined,
    { cause: err, retryable: true },
  );
}

/**
 * Run one Engine API call and map its failures: unreachable daemon, 404 (image not found) and
 * anything else (as `fallbackCode`).
 */
export async function engineCall<T>(
  what: string,
  reference: string | undefined,
  call: () => Promise<T>,
  fallbackCode: (typeof ErrorCodes)[keyof typeof ErrorCodes] = ErrorCodes.IMAGE_PUSH_FAILED,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isAstroError(err)) throw err;
    if (isDockerUnreachable(err)) throw dockerUnavailable(err, what);
    if (statusOf(err) === 404) {
      throw new ImageError(
        ErrorCodes.IMAGE_NOT_FOUND,
        `Image "${reference}" is not in the Docker daemon. Build or pull it first (docker images lists what is there), ` +
          'or pass the path of an image archive.',
        reference,
        { cause: err },
      );
    }
    throw new ImageError(fallbackCode, `Docker could not ${what}: ${(err as Error)?.message ?? String(err)}`, reference, {
      cause: err,
    });
  }
}
