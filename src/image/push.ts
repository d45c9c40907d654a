/**
 * `pushImage`: one entry point for both push methods.
 */
import { pushDaemon, type DaemonPushOptions } from './push-daemon.js';
import { pushNative, type NativePushOptions } from './push-native.js';
import type { ImageSource, PushResult, PushTarget } from './types.js';

/** Options of {@link pushImage}: those of the native push, plus the method and the daemon-only `keepTag`. */
export interface PushImageOptions extends NativePushOptions, Pick<DaemonPushOptions, 'keepTag'> {
  /**
   * `native` pushes over the OCI distribution API itself (no daemon needed for archives; resumable
   * chunked uploads); `daemon` asks the Docker daemon to push. @default 'native'
   */
  method?: 'native' | 'daemon';
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
 *   `ASTRO_IMAGE_INVALID_ARCHIVE`; AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for a closed
 *   `{ archive }` (or an archive with `method: 'daemon'`); AstroAbortError when `signal` fires.
 */
export function pushImage(source: ImageSource, target: PushTarget, options: PushImageOptions = {}): Promise<PushResult> {
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
  return pushNative(source, target, options);
}
