/**
 * What the flows hand back to callers never carries a usable upload SAS: a deploy record's
 * `dagsUploadUrl` / `bundleUploadUrl` grant write access to the deployment's DAG blob until they
 * expire, and results are the kind of object callers log, print and store. These helpers keep the
 * URLs readable (scheme, host, path, the non-secret SAS fields) with the `sig` replaced by
 * `[REDACTED]`.
 *
 * The raw deploy endpoints (`client.deploys.create / get / list / finalize`) return the record as
 * Astro sent it: a caller of `create` needs the URL to upload.
 */
import { redactUrl } from '../core/redact.js';
import type { RolloutResult } from './rollout.js';
import type { Deploy } from './schemas.js';

/** A copy of `deploy` with the SAS signature of its upload URLs redacted. */
export function redactDeploySas<T extends Deploy>(deploy: T): T {
  const out = { ...deploy };
  if (out.dagsUploadUrl) out.dagsUploadUrl = redactUrl(out.dagsUploadUrl);
  if (out.bundleUploadUrl) out.bundleUploadUrl = redactUrl(out.bundleUploadUrl);
  return out;
}

/** A copy of a rollout result whose deploy record (when any) has its upload SAS redacted. */
export function redactRolloutSas(result: RolloutResult): RolloutResult {
  return result.deploy ? { ...result, deploy: redactDeploySas(result.deploy) } : result;
}
