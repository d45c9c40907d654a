/**
 * Which push method can push which image source. One rule for the push and for the deploy flows,
 * which check it before they create a deploy (a push refused after create leaves the deploy
 * behind, INITIALIZED).
 */
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import type { PushImageOptions } from './push.js';
import type { ClassifiedSource } from './source.js';

/**
 * Throws `ASTRO_CONFIG_INVALID_OPTION` when `method` cannot push an image from `source`: the daemon
 * push asks the Docker daemon to push, so it needs an image in the daemon, not an archive (`auto`
 * pushes an archive natively).
 */
export function checkPushMethod(method: PushImageOptions['method'], source: Pick<ClassifiedSource, 'kind'>): void {
  if (method === 'daemon' && source.kind !== 'daemon') {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_INVALID_OPTION,
      'A daemon push needs an image in the Docker daemon, not an archive; use method "native" to push an archive.',
    );
  }
}
