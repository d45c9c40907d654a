/**
 * Docker Engine API access through dockerode, and the translation of its failures into typed
 * errors: "no daemon" and "no such image" are the two a user can act on, so they get their own
 * codes and messages.
 *
 * dockerode is an optional peer dependency, loaded here and nowhere else, and only when a daemon
 * path runs without a client of the caller's: it brings about 60 packages (ssh2 and cpu-features
 * with native builds, a gRPC stack) that a user who deploys DAGs or image archives never needs,
 * and importing it takes as long as the rest of the SDK.
 */
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { failureOf, statusFailure, transportFailure, withFailure, type Failure } from '../core/failure.js';
import type { DockerLike } from './docker-like.js';

/** The install command named by `ASTRO_IMAGE_DOCKERODE_MISSING`. */
export const DOCKERODE_INSTALL = 'npm install dockerode@^5';

let defaultClient: Promise<DockerLike> | undefined;

/**
 * The specifier as a variable, not a literal: a bundler (esbuild, webpack, Vite) then leaves the
 * import to run time, where it finds dockerode next to the app, instead of failing the build when
 * the optional peer is not installed or copying dockerode's native addons into the bundle.
 */
const DOCKERODE = 'dockerode';
const importDockerodeModule = (): Promise<unknown> => import(/* webpackIgnore: true */ /* @vite-ignore */ DOCKERODE);

/** True when `err` says that the module `name` itself (not one of its dependencies) cannot be found. */
function isModuleMissing(err: unknown, name: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return false;
  const message = String((err as Error).message);
  return message.includes(`'${name}'`) || message.includes(`"${name}"`);
}

/**
 * dockerode's constructor, imported on first use. `load` is the import itself (a seam for tests).
 *
 * @throws ImageError `ASTRO_IMAGE_DOCKERODE_MISSING` when dockerode is not installed
 */
export async function importDockerode(what: string, load: () => Promise<unknown> = importDockerodeModule): Promise<new () => DockerLike> {
  let mod: unknown;
  try {
    mod = await load();
  } catch (err) {
    if (!isModuleMissing(err, 'dockerode')) throw err;
    throw new ImageError(
      ErrorCodes.IMAGE_DOCKERODE_MISSING,
      `To ${what} the SDK talks to the Docker daemon through dockerode, an optional peer dependency that is not installed. ` +
        `Install it next to astro-deploy-sdk (\`${DOCKERODE_INSTALL}\`), or pass a client of your own as the \`docker\` option; ` +
        'an image archive made with `docker save` needs no daemon.',
      undefined,
      { cause: err },
    );
  }
  const ctor = (mod as { default?: unknown }).default ?? mod;
  return ctor as new () => DockerLike;
}

/**
 * The client to use: the caller's, else one built from `DOCKER_HOST` (dockerode reads it, falling
 * back to `/var/run/docker.sock`). The default client is created once per process; a failed
 * import is not remembered, so installing dockerode mid-process works.
 *
 * @param what what the client is needed for, as the missing-dockerode error words it ("inspect the image")
 */
export function dockerClient(docker: DockerLike | undefined, what = 'reach the Docker daemon'): Promise<DockerLike> {
  if (docker) return Promise.resolve(docker);
  defaultClient ??= importDockerode(what).then(
    (Dockerode) => new Dockerode(),
    (err: unknown) => {
      defaultClient = undefined;
      throw err;
    },
  );
  return defaultClient;
}

/**
 * The failure shape of a dockerode error: the Engine API's answer (dockerode sets `statusCode`)
 * or the socket's error. An error that already carries one (from an SDK edge) keeps it.
 */
export function engineFailure(err: unknown): Failure {
  const known = failureOf(err);
  if (known) return known;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? statusFailure(status) : transportFailure(err);
}

/**
 * True when `err` means the daemon could not be reached at all: no connection (missing or foreign
 * socket, refused, unknown host), or a connection the daemon dropped at once (reset, EPIPE), which
 * is what a socket that is not a Docker daemon does.
 */
export function isDockerUnreachable(err: unknown): boolean {
  const failure = engineFailure(err);
  return failure.kind === 'connect' || (failure.kind === 'reset' && (failure.code === 'ECONNRESET' || failure.code === 'EPIPE'));
}

/** The error thrown when the daemon does not answer. */
export function dockerUnavailable(err: unknown, what: string): ImageError {
  const host = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  return withFailure(
    new ImageError(
      ErrorCodes.IMAGE_DOCKER_UNAVAILABLE,
      `Cannot reach the Docker daemon (${host}) to ${what}: ${(err as Error)?.message ?? String(err)}. ` +
        'Start Docker (or set DOCKER_HOST), or pass an image archive made with `docker save` instead of an image name.',
      undefined,
      { cause: err, retryable: true },
    ),
    engineFailure(err),
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
    const failure = engineFailure(err);
    if (isDockerUnreachable(err)) throw dockerUnavailable(err, what);
    if (failure.status === 404) {
      throw new ImageError(
        ErrorCodes.IMAGE_NOT_FOUND,
        `Image "${reference}" is not in the Docker daemon. Build or pull it first (docker images lists what is there), ` +
          'or pass the path of an image archive.',
        reference,
        { cause: err },
      );
    }
    throw withFailure(
      new ImageError(fallbackCode, `Docker could not ${what}: ${(err as Error)?.message ?? String(err)}`, reference, {
        cause: err,
      }),
      failure,
    );
  }
}

const idIsConfigDigest = new WeakMap<DockerLike, Promise<boolean>>();

/**
 * True when the daemon's image IDs are config digests: Docker's classic image store. With the
 * containerd image store (Docker Desktop's default, and Docker Engine 29's for new installs) an
 * image's ID is the digest of its manifest or index instead, which names the config but is not
 * it. Read once per client from `GET /info` (`DriverStatus` names a containerd snapshotter there);
 * when that call fails, the ID is not taken for a config digest, which costs an export but never
 * pushes a wrong config.
 */
export function imageIdIsConfigDigest(docker: DockerLike): Promise<boolean> {
  let known = idIsConfigDigest.get(docker);
  if (!known) {
    known = new Promise<boolean>((resolve) => {
      try {
        docker.modem.dial({ path: '/info?', method: 'GET', statusCodes: { 200: true } }, (err, info) => {
          if (err || !info || typeof info !== 'object') return resolve(false);
          // The classic store's drivers report a list of their own settings, or null (vfs).
          const status = (info as { DriverStatus?: unknown }).DriverStatus;
          const containerd = Array.isArray(status) && status.some((pair) => Array.isArray(pair) && pair[0] === 'driver-type' && String(pair[1]).startsWith('io.containerd.snapshotter'));
          resolve(!containerd);
        });
      } catch {
        resolve(false);
      }
    });
    idIsConfigDigest.set(docker, known);
  }
  return known;
}
