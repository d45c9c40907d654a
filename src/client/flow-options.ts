/**
 * The options a deploy flow hands on to a later phase (the bundle upload, the image push, the
 * rollout wait), checked before anything is read, bundled, built or created, each by the rule of
 * the module that uses them: a deploy created only to fail on an option that could have been
 * refused first would stay behind, INITIALIZED. Where the image is (daemon or archive) is known
 * only later; the flows check the push method against it with the image module's
 * `checkPushMethod`, still before create.
 */
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { validatePushOptions } from '../image/push-options.js';
import type { UploadBlockBlobOptions } from '../upload/index.js';
import { validateUploadOptions } from '../upload/options.js';
import type { FlowWait } from './deploy-common.js';
import { validateWaitOptions } from './rollout.js';

/** The options {@link checkFlowOptions} checks. */
export interface FlowOptions {
  upload?: Omit<UploadBlockBlobOptions, 'signal' | 'onEvent'> | undefined;
  push?: Parameters<typeof validatePushOptions>[0] | undefined;
  wait?: FlowWait | undefined;
}

/**
 * Options the flows took once and take no more, with what replaces each. TypeScript refuses them;
 * a JavaScript caller still passing one would have it ignored without a word, and the gate it
 * asked for (`parseCheck`) would not run.
 */
const REPLACED_OPTIONS: Record<string, string> = { parseCheck: "tests: 'parse'" };

/**
 * Throws `ASTRO_CONFIG_INVALID_OPTION` for an option the upload, the push or the wait would
 * refuse, and for an option that was replaced.
 */
export function checkFlowOptions(params: FlowOptions): void {
  for (const [name, instead] of Object.entries(REPLACED_OPTIONS)) {
    if ((params as Record<string, unknown>)[name] !== undefined) {
      throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} was replaced by ${instead}: pass that instead.`);
    }
  }
  if (params.upload !== undefined) validateUploadOptions(params.upload);
  if (params.push !== undefined) validatePushOptions(params.push);
  if (params.wait && typeof params.wait === 'object') validateWaitOptions(params.wait);
}
