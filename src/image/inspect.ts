/**
 * Reading an image's platform and labels (from the daemon or an archive), and the checks Astro
 * needs before anything is pushed: linux/amd64, an Astro Runtime label, and the runtime rules.
 */
import { ErrorCodes, ImageError } from '../core/errors.js';
import { dockerClient, engineCall } from './docker.js';
import type { DockerLike } from './docker-like.js';
import { resolveImage } from './layout.js';
import { AIRFLOW_VERSION_LABEL, checkRuntimeRules, RUNTIME_VERSION_LABEL, type RuntimeRules } from './runtime.js';
import { classifySource, DiskArchive, type ClassifiedSource } from './source.js';
import type { DockerOptions, ImageInfo, ImagePlatform, ImageSource } from './types.js';

/** The platform Astro runs. */
export const ASTRO_PLATFORM: ImagePlatform = { os: 'linux', architecture: 'amd64' };

/** Options of {@link inspectImage}. */
export interface InspectOptions extends DockerOptions {
  signal?: AbortSignal;
}

function withVersions(info: Omit<ImageInfo, 'runtimeVersion' | 'airflowVersion'>): ImageInfo {
  const out: ImageInfo = { ...info };
  const runtime = info.labels[RUNTIME_VERSION_LABEL]?.trim();
  const airflow = info.labels[AIRFLOW_VERSION_LABEL]?.trim();
  if (runtime) out.runtimeVersion = runtime;
  if (airflow) out.airflowVersion = airflow;
  return out;
}

/** Inspect an image in the daemon (`GET /images/{name}/json`). */
export async function inspectDaemonImage(name: string, docker: DockerLike): Promise<ImageInfo> {
  const raw = await engineCall('inspect the image', name, () => docker.getImage(name).inspect(), ErrorCodes.IMAGE_NOT_FOUND);
  const r = raw as typeof raw & { Variant?: string };
  const info: Omit<ImageInfo, 'runtimeVersion' | 'airflowVersion'> = {
    source: 'daemon',
    reference: name,
    configDigest: r.Id,
    os: r.Os ?? '',
    architecture: r.Architecture ?? '',
    labels: { ...(r.Config?.Labels ?? {}) },
    diffIds: r.RootFS?.Layers ?? [],
    repoTags: r.RepoTags ?? [],
  };
  if (r.Variant) info.variant = r.Variant;
  if (r.Created) info.created = r.Created;
  if (r.Descriptor?.mediaType && r.Descriptor.digest === r.Id) info.manifestMediaType = r.Descriptor.mediaType;
  return withVersions(info);
}

/**
 * Inspect an image archive without a daemon. An already opened archive (`where.archive`) is read
 * as it is and left open; otherwise the archive is opened here and closed again.
 */
export async function inspectArchive(where: Extract<ClassifiedSource, { kind: 'archive' }>, signal?: AbortSignal): Promise<ImageInfo> {
  const { path, archiveImage } = where;
  const given = where.archive as DiskArchive | undefined;
  const archive = given ?? (await DiskArchive.open(path, signal));
  try {
    const resolved = await resolveImage(archive, {
      archiveName: path,
      platform: ASTRO_PLATFORM,
      ...(archiveImage ? { archiveImage } : {}),
    });
    const info: Omit<ImageInfo, 'runtimeVersion' | 'airflowVersion'> = {
      source: 'archive',
      reference: path,
      configDigest: resolved.configDigest,
      os: resolved.platform.os,
      architecture: resolved.platform.architecture,
      labels: { ...(resolved.configJson.config?.Labels ?? {}) },
      diffIds: resolved.configJson.rootfs?.diff_ids ?? [],
      repoTags: resolved.repoTags,
    };
    if (resolved.platform.variant) info.variant = resolved.platform.variant;
    if (resolved.platforms) info.platforms = resolved.platforms;
    if (resolved.configJson.created) info.created = resolved.configJson.created;
    return withVersions(info);
  } finally {
    if (!given) await archive.close();
  }
}

/**
 * Read an image's platform, labels and layers. From an archive no daemon is needed; for a
 * multi-platform archive the linux/amd64 image is described (or the first one when there is none,
 * with `platforms` listing what there is). An archive path is opened (a `.tar.gz` gunzipped) and
 * closed again on each call; pass `{ archive }` from {@link openImageArchive} to reuse one opening.
 *
 * @throws ImageError `ASTRO_IMAGE_NOT_FOUND`, `ASTRO_IMAGE_DOCKER_UNAVAILABLE`, `ASTRO_IMAGE_INVALID_ARCHIVE`;
 *   AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for a closed `{ archive }`; AstroAbortError when `signal` fires
 */
export async function inspectImage(source: ImageSource, options: InspectOptions = {}): Promise<ImageInfo> {
  const where = await classifySource(source);
  if (where.kind === 'archive') return inspectArchive(where, options.signal);
  return inspectDaemonImage(where.name, await dockerClient(options.docker, 'inspect the image'));
}

/** Rules of {@link validateImage}. */
export interface ValidateRules extends RuntimeRules, DockerOptions {
  /** Require the Astro Runtime label. Set false only for images known not to be runtime-based. @default true */
  requireRuntimeLabel?: boolean;
  signal?: AbortSignal;
}

const fmtPlatform = (p: ImagePlatform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/**
 * Check an image is deployable to Astro, before any byte is pushed: linux/amd64 (the amd64 entry
 * of a multi-platform archive), an Astro Runtime label, and the runtime rules (no downgrade, listed
 * in the organization's deployment options, the Airflow 2 to 3 rule). Resolves with what
 * {@link inspectImage} returns; takes the same sources (`{ archive }` included, left open).
 *
 * @throws ImageError `ASTRO_IMAGE_PLATFORM_MISMATCH`, `ASTRO_IMAGE_NOT_RUNTIME`,
 *   `ASTRO_IMAGE_RUNTIME_DOWNGRADE`, `ASTRO_IMAGE_RUNTIME_UNSUPPORTED`,
 *   `ASTRO_IMAGE_AIRFLOW3_UPGRADE_BLOCKED`, and those of {@link inspectImage}
 */
export async function validateImage(source: ImageSource, rules: ValidateRules = {}): Promise<ImageInfo> {
  const info = await inspectImage(source, rules);
  assertValid(info, rules);
  return info;
}

/** The checks of {@link validateImage} on an already inspected image. */
export function assertValid(info: ImageInfo, rules: Omit<ValidateRules, 'docker' | 'signal'> = {}): void {
  const ref = info.reference;
  if (info.os !== ASTRO_PLATFORM.os || info.architecture !== ASTRO_PLATFORM.architecture) {
    const offered = info.platforms?.length ? ` The archive offers ${info.platforms.map(fmtPlatform).join(', ')}.` : '';
    throw new ImageError(
      ErrorCodes.IMAGE_PLATFORM_MISMATCH,
      `Image ${ref} is built for ${fmtPlatform(info)}, but Astro runs linux/amd64.${offered} ` +
        'Rebuild it for linux/amd64: `docker build --platform=linux/amd64 -t <image> .` ' +
        '(on an Apple silicon Mac this uses emulation; or `docker buildx build --platform linux/amd64 --load -t <image> .`).',
      ref,
    );
  }
  const version = info.runtimeVersion;
  if (!version) {
    if (rules.requireRuntimeLabel === false) return;
    throw new ImageError(
      ErrorCodes.IMAGE_NOT_RUNTIME,
      `Image ${ref} has no ${RUNTIME_VERSION_LABEL} label, so it is not based on Astro Runtime. ` +
        'Build it FROM an Astro Runtime image (quay.io/astronomer/astro-runtime or astrocrpublic.azurecr.io/runtime).',
      ref,
    );
  }
  const violation = checkRuntimeRules(version, rules);
  if (!violation) return;
  switch (violation.rule) {
    case 'downgrade':
      throw new ImageError(
        ErrorCodes.IMAGE_RUNTIME_DOWNGRADE,
        `Image ${ref} uses Astro Runtime ${version}, lower than the deployment's ${violation.deploymentVersion}; ` +
          `Astro does not downgrade. Change the FROM line of your Dockerfile to Runtime ${violation.deploymentVersion} or higher.`,
        ref,
      );
    case 'unsupported':
      throw new ImageError(
        ErrorCodes.IMAGE_RUNTIME_UNSUPPORTED,
        `Image ${ref} uses Astro Runtime ${version}, which this organization cannot deploy. ` +
          `Use one of: ${violation.allowed.join(', ') || '(none listed)'}.`,
        ref,
      );
    case 'airflow3-too-old':
      throw new ImageError(
        ErrorCodes.IMAGE_AIRFLOW3_UPGRADE_BLOCKED,
        `Image ${ref} uses Airflow 3 (Runtime ${version}) but the deployment runs Airflow 2 on Runtime ` +
          `${violation.deploymentVersion}. Upgrade the deployment to Runtime 12.0.0 or higher on Airflow 2 first.`,
        ref,
      );
    case 'airflow3-not-confirmed':
      throw new ImageError(
        ErrorCodes.IMAGE_AIRFLOW3_UPGRADE_BLOCKED,
        `Image ${ref} would move the deployment from Airflow 2 (Runtime ${violation.deploymentVersion}) to Airflow 3 ` +
          `(Runtime ${version}). This is a major upgrade; set allowAirflow3Upgrade: true to confirm it.`,
        ref,
      );
  }
}
