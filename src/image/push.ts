/**
 * `pushImage`: one entry point for both push methods.
 */
import { pushAuto, withDaemonDigests, type AutoPushOptions } from './push-auto.js';
import { pushDaemon, type DaemonPushOptions } from './push-daemon.js';
import { pushNative, type NativePushOptions } from './push-native.js';
import { validatePushOptions } from './push-options.js';
import type { ImageSource, PushResult, PushTarget } from './types.js';

/** Options of {@link pushImage}: those of the native push, plus the method and the daemon-only `keepTag`. */
export interface PushImageOptions extends NativePushOptions, Pick<DaemonPushOptions, 'keepTag'>, Pick<AutoPushOptions, 'seedTag'> {
  /**
   * - `native` pushes over the OCI distribution API itself (no daemon needed for archives;
   *   resumable chunked uploads). A daemon image is read through the daemon's export, which the
   *   daemon writes whole to disk before its first byte whenever a layer must be sent. Layers
   *   the registry holds as an `auto` push's daemon push sent them are skipped as well.
   * - `daemon` asks the Docker daemon to push (`docker push`): no export, but the daemon's own
   *   retries, and it recognises only layers it pushed itself (its gzip, its digests).
   * - `auto` (daemon images; an archive is pushed natively) picks per push: the native push when
   *   the registry holds every layer (manifest only) or holds layers in the native push's gzip;
   *   otherwise the daemon push (no export), checked against the image ID and remembered in the
   *   layer cache, with the native push taking over when it fails or starts retrying
   *   (`PushResult.fallback`, event `image:push-method`). `deployProject` uses it by default.
   * @default 'native'
   */
  method?: 'native' | 'daemon' | 'auto';
}

/**
 * Push an image (daemon image name/ID, archive path, or an `{ archive }` from
 * {@link openImageArchive}, native method only) to `repository:tag`. On Astro, take
 * `repository` and `tag` from the deploy (`imageRepository`, `imageTag`) and use
 * `auth: { username: 'cli', password: <API token> }`. The password never appears in errors or
 * events. Validate first ({@link validateImage}): the push itself does not check the platform.
 *
 * @throws ImageError `ASTRO_IMAGE_REGISTRY_AUTH`, `ASTRO_IMAGE_PUSH_FAILED`,
 *   `ASTRO_IMAGE_REGISTRY_UNAVAILABLE`, `ASTRO_IMAGE_NOT_FOUND`, `ASTRO_IMAGE_DOCKER_UNAVAILABLE`,
 *   `ASTRO_IMAGE_INVALID_ARCHIVE` (with method `auto`, the native push's errors when the daemon
 *   push failed too); AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for a closed
 *   `{ archive }` (or an archive with `method: 'daemon'`) and for numeric options out of range
 *   (before anything is read or sent); AstroAbortError when `signal` fires.
 */
export async function pushImage(source: ImageSource, target: PushTarget, options: PushImageOptions = {}): Promise<PushResult> {
  validatePushOptions(options);
  if (options.method === 'daemon') {
    const daemonOptions: DaemonPushOptions = {};
    if (options.auth) daemonOptions.auth = options.auth;
    if (options.docker) daemonOptions.docker = options.docker;
    if (options.keepTag !== undefined) daemonOptions.keepTag = options.keepTag;
    if (options.signal) daemonOptions.signal = options.signal;
    if (options.onEvent) daemonOptions.onEvent = options.onEvent;
    if (options.logger) daemonOptions.logger = options.logger;
    return pushDaemon(source, target, daemonOptions);
  }
  if (options.method === 'auto') {
    const { method: _method, ...rest } = options;
    return pushAuto(source, target, rest);
  }
  // Layers an 'auto' push left in the registry as the daemon gzipped them are skipped too.
  const { seedTag: _seedTag, ...native } = options;
  return pushNative(source, target, withDaemonDigests(native));
}
