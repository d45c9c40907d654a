/**
 * The one check of a push's numeric options, made before anything is read or sent: by `pushImage`
 * itself, and by the deploy flows before they create a deploy. Without it a zero concurrency left
 * the layers unscheduled, a negative chunk size reached the chunk sizer, and a gzip level zlib
 * refuses failed mid-push.
 */
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { isTimerMs, TIMER_MS_RULE } from '../core/timer-ms.js';
import { registryRetryPolicy } from './blob-upload.js';
import type { NativePushOptions } from './push-native.js';

const positiveInteger = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** Each checked option: its rule, and what must hold. */
const RULES: Array<[keyof NativePushOptions, string, (v: unknown) => boolean]> = [
  ['chunkSizeBytes', 'a whole number of bytes above 0', positiveInteger],
  ['minChunkSizeBytes', 'a whole number of bytes above 0', positiveInteger],
  ['concurrency', 'a whole number above 0', positiveInteger],
  ['gzipLevel', 'a whole number from 1 to 9', (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 9],
  ['gzipBlockBytes', 'a whole number of bytes, 0 (one stream per layer) or from 65536', (v) => v === 0 || (positiveInteger(v) && (v as number) >= 65536)],
  ['stallTimeoutMs', TIMER_MS_RULE, isTimerMs],
  ['commitTimeoutMs', TIMER_MS_RULE, isTimerMs],
  ['requestTimeoutMs', TIMER_MS_RULE, isTimerMs],
];

/**
 * Throws `ASTRO_CONFIG_INVALID_OPTION` for a push option no push could use (see {@link RULES});
 * an option left undefined takes its default.
 */
export function validatePushOptions(options: Pick<NativePushOptions, 'retry' | (typeof RULES)[number][0]>): void {
  for (const [name, rule, holds] of RULES) {
    const value = options[name];
    if (value !== undefined && !holds(value)) {
      throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Push option ${name} must be ${rule}, not ${String(value)}.`);
    }
  }
  if (options.retry !== undefined) registryRetryPolicy(options.retry);
}
