/**
 * What a deploy shipped, written where Astro keeps it, and read back to skip a deploy of code the
 * deployment already runs.
 *
 * Every deploy the flows create ends its description with a short marker:
 *
 *     nightly [astro-deploy-sdk dags:sha256:3f2a9c0d1e4b5a6978877665544332211]
 *     [astro-deploy-sdk image:sha256:9b1c... dags:sha256:3f2a...]
 *
 * `dags:` is the first 32 hex digits of the bundle fingerprint (a SHA-256 over the archive names,
 * modes and content hashes, mtimes left out), `image:` those of the image's config digest (its
 * image ID, which the pushed manifest references). The comparison reads Astro's records, never
 * local state: the deploy the deployment runs is found in its deploy list by the DAG version
 * (`desiredDagTarballVersion`, else `dagTarballVersion`) and the image tag it reports, and its
 * marker is compared with ours. So a CI runner that never deployed before still skips.
 */
import type { DeploysResource } from './resources.js';
import type { Deploy, Deployment } from './schemas.js';
import type { RequestOptions } from './transport.js';

/** Hex digits of each hash written in the marker. */
export const MARKER_HASH_DIGITS = 32;
/** The longest description Astro accepts. */
export const MAX_DESCRIPTION_LENGTH = 500;

/** What a deploy ships, by content: hex SHA-256 digests (full or as recorded). */
export interface CodeIdentity {
  /** The DAG bundle fingerprint. */
  dags?: string;
  /** The image's config digest (image ID), hex without `sha256:`. */
  image?: string;
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, '').toLowerCase();

/** The marker for `identity`, e.g. `[astro-deploy-sdk dags:sha256:3f2a…]`; '' when it names nothing. */
export function markerOf(identity: CodeIdentity): string {
  const parts: string[] = [];
  if (identity.image) parts.push(`image:sha256:${hexOf(identity.image).slice(0, MARKER_HASH_DIGITS)}`);
  if (identity.dags) parts.push(`dags:sha256:${hexOf(identity.dags).slice(0, MARKER_HASH_DIGITS)}`);
  return parts.length ? `[astro-deploy-sdk ${parts.join(' ')}]` : '';
}

/**
 * The description a flow sends: the caller's, then the marker (unless `record` is false), cut so
 * that the whole fits Astro's 500 characters (the caller's text is shortened, never the marker).
 */
export function describeDeploy(description: string | undefined, identity: CodeIdentity, record = true): string {
  const text = description ?? '';
  const marker = record ? markerOf(identity) : '';
  if (!marker) return text;
  if (!text) return marker;
  const room = MAX_DESCRIPTION_LENGTH - marker.length - 1;
  return `${text.length > room ? `${text.slice(0, Math.max(0, room - 1))}…` : text} ${marker}`;
}

const MARKER_RE = /\[astro-deploy-sdk((?: (?:dags|image):sha256:[0-9a-f]{12,64})+)\]/;

/** The identity recorded in a deploy's description, or undefined when it has no marker. */
export function parseMarker(description: string | undefined): CodeIdentity | undefined {
  const m = description ? MARKER_RE.exec(description) : null;
  if (!m) return undefined;
  const out: CodeIdentity = {};
  for (const part of m[1]!.trim().split(' ')) {
    const [kind, , hex] = part.split(':');
    if (kind === 'dags' || kind === 'image') out[kind] = hex!;
  }
  return out;
}

/** Whether a recorded hash (a prefix of at least 12 digits) names our full hash. */
export function sameHash(recorded: string | undefined, ours: string | undefined): boolean {
  if (!recorded || !ours || recorded.length < 12) return false;
  return hexOf(ours).startsWith(recorded.toLowerCase());
}

/** What the deployment runs, as its deploy records say. */
export interface RunningCode {
  /** The DAG version it runs (or is rolling out), and the deploy that shipped it. */
  dags?: { dagTarballVersion: string; deployId?: string; fingerprint?: string };
  /** The image tag it runs, and the deploy that pushed it. */
  image?: { imageTag: string; deployId?: string; imageId?: string };
}

const isImageDeploy = (d: Deploy) => d.type === 'IMAGE_ONLY' || d.type === 'IMAGE_AND_DAG';

/**
 * Read the deploy list and find what the deployment runs: for the DAGs, the deploys with its
 * `desiredDagTarballVersion` (a rollout in flight counts as what it will run) or
 * `dagTarballVersion`; for the image, the image deploys with its `imageTag`. Each side takes the
 * recorded hash of the newest such deploy that has a marker (a blob version or a deploy tag names
 * one upload, so every deploy carrying it shipped the same bytes; a rollback deploy repeats them).
 */
export async function runningCode(deploys: DeploysResource, deployment: Deployment, options: RequestOptions): Promise<RunningCode> {
  const version = deployment.desiredDagTarballVersion || deployment.dagTarballVersion || undefined;
  const tag = deployment.imageTag || undefined;
  const out: RunningCode = {};
  if (!version && !tag) return out;
  const all = await deploys.listAll(deployment.id, {}, options);
  if (version) {
    const carrying = all.filter((d) => d.dagTarballVersion === version);
    const marked = carrying.find((d) => parseMarker(d.description)?.dags);
    const deployId = (marked ?? carrying[0])?.id;
    out.dags = { dagTarballVersion: version, ...(deployId ? { deployId } : {}), ...(marked ? { fingerprint: parseMarker(marked.description)!.dags! } : {}) };
  }
  if (tag) {
    const carrying = all.filter((d) => isImageDeploy(d) && d.imageTag === tag);
    const marked = carrying.find((d) => parseMarker(d.description)?.image);
    const deployId = (marked ?? carrying[0])?.id;
    out.image = { imageTag: tag, ...(deployId ? { deployId } : {}), ...(marked ? { imageId: parseMarker(marked.description)!.image! } : {}) };
  }
  return out;
}

/** How what a flow would ship compares with what the deployment runs. */
export interface UnchangedCheck {
  /** Every part the flow would ship matches what runs (and nothing is rolling out an image). */
  unchanged: boolean;
  /** The DAG bundle matches the running one (undefined: the flow ships no bundle). */
  dags?: boolean;
  /** The image matches the running one (undefined: the flow ships no image). */
  image?: boolean;
  /** What runs, from the deploy records. */
  running: RunningCode;
}

/**
 * Compare `ours` with what runs. An image is never taken as unchanged while the deployment is
 * `DEPLOYING`: an image deploy in flight has no "desired tag" to compare with.
 */
export function compareWithRunning(ours: CodeIdentity, running: RunningCode, deployment: Deployment): UnchangedCheck {
  const check: UnchangedCheck = { unchanged: false, running };
  if (ours.dags !== undefined) check.dags = sameHash(running.dags?.fingerprint, ours.dags);
  if (ours.image !== undefined) check.image = deployment.status !== 'DEPLOYING' && sameHash(running.image?.imageId, ours.image);
  check.unchanged = (check.dags !== undefined || check.image !== undefined) && check.dags !== false && check.image !== false;
  return check;
}

/** What a flow resolves with when `skipUnchanged` found the deployment already running this code. */
export interface DeploySkipped {
  /** Why nothing was deployed. */
  skipped: 'unchanged';
  /** The deployment that already runs this code. */
  deploymentId: string;
  /** The deploy record that shipped what runs (of the DAGs when the flow ships a bundle, else of the image). */
  runningDeployId?: string;
  /** The DAG version the deployment runs, when the flow would ship DAGs. */
  dagTarballVersion?: string;
  /** The image tag the deployment runs, when the flow would ship an image. */
  imageTag?: string;
  /** Our bundle fingerprint (hex SHA-256), when the flow would ship DAGs. */
  fingerprint?: string;
  /** Our image's config digest (`sha256:...`), when the flow would ship an image. */
  imageId?: string;
  /** The comparison that decided it. */
  check: UnchangedCheck;
}

/** The skipped result for a check that found the code unchanged. */
export function skippedResult(deploymentId: string, ours: CodeIdentity, check: UnchangedCheck): DeploySkipped {
  const { running } = check;
  const runningDeployId = ours.dags !== undefined ? running.dags?.deployId : running.image?.deployId;
  return {
    skipped: 'unchanged',
    deploymentId,
    ...(runningDeployId ? { runningDeployId } : {}),
    ...(ours.dags !== undefined && running.dags ? { dagTarballVersion: running.dags.dagTarballVersion } : {}),
    ...(ours.image !== undefined && running.image ? { imageTag: running.image.imageTag } : {}),
    ...(ours.dags !== undefined ? { fingerprint: ours.dags } : {}),
    ...(ours.image !== undefined ? { imageId: ours.image.startsWith('sha256:') ? ours.image : `sha256:${ours.image}` } : {}),
    check,
  };
}

/** Options every deploy flow takes to plan, skip and record what it ships. */
export interface DeployPlanningOptions {
  /**
   * Plan only: resolve with `{ dryRun: true, plan }` after the reads and local checks the real
   * run makes (deployment, deployment options, deploy list, bundle, image checks, the build for
   * `deployProject`), collecting every refusal instead of throwing. Nothing is created at Astro,
   * no byte is uploaded or pushed, no test container runs. @default false
   */
  dryRun?: boolean;
  /**
   * When the deployment already runs what this deploy would ship (the DAG bundle fingerprint, the
   * image's config digest, read back from the marker in its deploy records), resolve with
   * `{ skipped: 'unchanged', ... }` without creating a deploy or sending a byte. @default false
   */
  skipUnchanged?: boolean;
  /**
   * Append the fingerprint marker (`[astro-deploy-sdk dags:sha256:… image:sha256:…]`) to the
   * deploy's description, which `skipUnchanged` reads back. @default true
   */
  recordFingerprint?: boolean;
}
