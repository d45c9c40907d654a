/**
 * Finding the image inside an archive: `index.json` (OCI image layout, which current Docker also
 * writes) or the legacy `manifest.json` of older `docker save`. The result names the archive
 * members that hold the config and each layer; reading and compressing them is someone else's job.
 */
import { createHash } from 'node:crypto';
import { ErrorCodes, ImageError } from '../core/errors.js';
import type { ImagePlatform } from './types.js';

/** Media types the module reads and writes. */
export const MediaTypes = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

/** Compression of a layer as stored in the archive. */
export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** Read access to an archive's members, whatever holds them. */
export interface ArchiveReader {
  /** True when a regular file (after following links) of that name exists. */
  has(name: string): boolean;
  /** Read a small member (JSON) fully. */
  readSmall(name: string): Promise<Buffer>;
  /** Sniff the compression of a member from its first bytes. */
  sniff(name: string): Promise<LayerCompression>;
}

/** A layer as found in the archive. */
export interface ArchiveLayer {
  /** Archive member holding the layer bytes. */
  member: string;
  /** Compression of those bytes. */
  compression: LayerCompression;
  /** Registry digest of the member's bytes when the archive states it (OCI descriptors). */
  digest?: string;
  /** Size of the member's bytes when stated. */
  size?: number;
  /** Uncompressed digest from the config's `rootfs.diff_ids`. */
  diffId?: string;
}

/** The image config fields this module reads. */
export interface ImageConfigJson {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: { Labels?: Record<string, string> | null } | null;
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** An image resolved inside an archive. */
export interface ResolvedImage {
  /** `oci` when found through `index.json`, `docker` for the legacy `manifest.json`. */
  format: 'oci' | 'docker';
  config: Buffer;
  configDigest: string;
  /**
   * Every ID a Docker daemon may give this image: the config digest (the classic image store's
   * image ID), and for an OCI layout the manifest's digest and those of the indexes above it
   * (the containerd image store names an image by the top one).
   */
  imageIds: string[];
  configJson: ImageConfigJson;
  layers: ArchiveLayer[];
  platform: ImagePlatform;
  /** All platforms of a multi-platform index, when there was one. */
  platforms?: ImagePlatform[];
  repoTags: string[];
}

/** An entry of an index's `manifests` (or a manifest's `config` and `layers`). */
export interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function invalid(archive: string, message: string, cause?: unknown): ImageError {
  return new ImageError(
    ErrorCodes.IMAGE_INVALID_ARCHIVE,
    `${archive} is not a usable image archive: ${message}. Create one with \`docker save -o image.tar <image>\` ` +
      '(or an OCI layout archive with skopeo/buildx).',
    archive,
    cause === undefined ? {} : { cause },
  );
}

function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

async function readJson<T>(reader: ArchiveReader, name: string, archive: string): Promise<T> {
  let raw: Buffer;
  try {
    raw = await reader.readSmall(name);
  } catch (err) {
    throw invalid(archive, `cannot read ${name}`, err);
  }
  try {
    return JSON.parse(raw.toString('utf8')) as T;
  } catch (err) {
    throw invalid(archive, `${name} is not valid JSON`, err);
  }
}

/** True for an OCI/Docker index (multi-platform list). */
export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerManifestList;
}

function platformOf(d: Descriptor): ImagePlatform | undefined {
  if (!d.platform?.os || !d.platform.architecture) return undefined;
  const p: ImagePlatform = { os: d.platform.os, architecture: d.platform.architecture };
  if (d.platform.variant) p.variant = d.platform.variant;
  return p;
}

/** Attestation manifests (`unknown/unknown`) ride along in BuildKit indexes; they are never the image. */
function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown';
}

function compressionOfMediaType(mediaType: string | undefined): LayerCompression | undefined {
  if (!mediaType) return undefined;
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd')) return 'zstd';
  if (mediaType.endsWith('.tar')) return 'none';
  return undefined;
}

function refNames(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  return [a['io.containerd.image.name'], a['org.opencontainers.image.ref.name']].filter((x): x is string => !!x);
}

function matchesRef(names: string[], wanted: string): boolean {
  return names.some((n) => n === wanted || n.endsWith(`/${wanted}`) || n === `${wanted}:latest` || n.endsWith(`/${wanted}:latest`));
}

/** The entry of an index's `manifests` for `wanted` (attestations left out), if one matches. */
export function manifestForPlatform(manifests: Descriptor[], wanted: ImagePlatform): Descriptor | undefined {
  return manifests.find((d) => {
    const p = isAttestation(d) ? undefined : platformOf(d);
    return p !== undefined && samePlatform(p, wanted);
  });
}

/** Options of {@link resolveImage}. */
export interface ResolveOptions {
  /** Platform to pick from a multi-platform index. @default linux/amd64 */
  platform?: ImagePlatform;
  /** Image to pick when the archive holds several (tag or ref name). */
  archiveImage?: string;
  /** Name of the archive, for messages. */
  archiveName: string;
}

function samePlatform(a: ImagePlatform, b: ImagePlatform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (!b.variant || a.variant === b.variant);
}

/** Resolve the image in an archive (OCI layout first, then the legacy `manifest.json`). */
export async function resolveImage(reader: ArchiveReader, options: ResolveOptions): Promise<ResolvedImage> {
  const archive = options.archiveName;
  if (reader.has('index.json')) {
    try {
      return await resolveOci(reader, options);
    } catch (err) {
      // Current Docker writes both formats; if the OCI side is unusable, the legacy side may not be.
      if (!reader.has('manifest.json')) throw err;
    }
  }
  if (reader.has('manifest.json')) return resolveLegacy(reader, options);
  throw invalid(archive, 'it has neither index.json (OCI layout) nor manifest.json (docker save)');
}

async function resolveOci(reader: ArchiveReader, options: ResolveOptions): Promise<ResolvedImage> {
  const archive = options.archiveName;
  const wanted = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const index = await readJson<{ manifests?: Descriptor[] }>(reader, 'index.json', archive);
  let candidates = (index.manifests ?? []).filter((d) => d.digest);
  if (options.archiveImage) {
    const picked = candidates.filter((d) => matchesRef(refNames(d), options.archiveImage!));
    if (picked.length === 0) throw invalid(archive, `no image named "${options.archiveImage}" in index.json`);
    candidates = picked;
  }
  if (candidates.length === 0) throw invalid(archive, 'index.json lists no manifests');
  // `docker save a b` lists one entry per image (one per name, so the same digest may repeat); a
  // multi-platform layout lists one per platform instead. Picking among several images would
  // push whichever the daemon wrote first, so they must be told apart, as manifest.json's are.
  const distinct = new Set(candidates.filter((d) => !isAttestation(d)).map((d) => d.digest));
  if (distinct.size > 1 && !candidates.every((d) => isAttestation(d) || platformOf(d))) {
    throw invalid(archive, `it holds ${distinct.size} images; say which one with archiveImage`);
  }

  // Walk nested indexes until one manifest is chosen, remembering the platforms on offer and the
  // digests of the indexes passed through (a daemon with the containerd image store names the
  // image by its top one).
  let platforms: ImagePlatform[] | undefined;
  let chosen: Descriptor | undefined;
  let tags: string[] = [];
  const indexDigests: string[] = [];
  let level = candidates;
  for (let depth = 0; depth < 4 && !chosen; depth++) {
    const images = level.filter((d) => !isAttestation(d));
    const withPlatform = images.filter((d) => platformOf(d));
    if (withPlatform.length > 0) platforms = withPlatform.map((d) => platformOf(d)!);
    // No match: take the first so that validation can report what the archive holds instead.
    const pick = manifestForPlatform(images, wanted) ?? images[0];
    if (!pick) throw invalid(archive, 'index.json lists no image manifests');
    if (depth === 0) tags = candidates.filter((d) => d.digest === pick.digest).flatMap(refNames);
    if (isIndexType(pick.mediaType)) {
      indexDigests.push(pick.digest!);
      const path = blobPath(pick.digest!);
      if (!reader.has(path)) throw invalid(archive, `nested index ${pick.digest} is missing from the archive`);
      const nested = await readJson<{ manifests?: Descriptor[] }>(reader, path, archive);
      level = (nested.manifests ?? []).filter((d) => d.digest);
    } else {
      chosen = pick;
    }
  }
  if (!chosen) throw invalid(archive, 'image index nesting is too deep');
  const manifestPath = blobPath(chosen.digest!);
  if (!reader.has(manifestPath)) {
    const p = platformOf(chosen);
    throw invalid(archive, `the manifest for ${p ? `${p.os}/${p.architecture}` : chosen.digest} is not in the archive`);
  }
  const manifest = await readJson<{ mediaType?: string; config?: Descriptor; layers?: Descriptor[] }>(reader, manifestPath, archive);
  if (isIndexType(manifest.mediaType)) throw invalid(archive, 'expected an image manifest, found an index');
  if (!manifest.config?.digest) throw invalid(archive, 'the manifest has no config');
  const configPath = blobPath(manifest.config.digest);
  if (!reader.has(configPath)) throw invalid(archive, 'the image config is not in the archive');
  const config = await reader.readSmall(configPath);
  if (sha256(config) !== manifest.config.digest) throw invalid(archive, 'the image config does not match its digest');
  const configJson = parseConfig(config, archive);
  const diffIds = configJson.rootfs?.diff_ids ?? [];
  const layerDescs = manifest.layers ?? [];
  if (diffIds.length !== layerDescs.length) {
    throw invalid(archive, `the manifest lists ${layerDescs.length} layers but the config ${diffIds.length}`);
  }
  const layers: ArchiveLayer[] = [];
  for (const [i, d] of layerDescs.entries()) {
    if (!d.digest) throw invalid(archive, `layer ${i} has no digest`);
    const member = blobPath(d.digest);
    if (!reader.has(member)) throw invalid(archive, `layer ${d.digest} is not in the archive`);
    const compression = compressionOfMediaType(d.mediaType) ?? (await reader.sniff(member));
    const layer: ArchiveLayer = { member, compression, digest: d.digest, diffId: diffIds[i]! };
    if (typeof d.size === 'number') layer.size = d.size;
    layers.push(layer);
  }
  const resolved: ResolvedImage = {
    format: 'oci',
    config,
    configDigest: manifest.config.digest,
    imageIds: [manifest.config.digest, chosen.digest!, ...indexDigests],
    configJson,
    layers,
    platform: platformFromConfig(configJson),
    repoTags: tags,
  };
  if (platforms && platforms.length > 1) resolved.platforms = platforms;
  return resolved;
}

function parseConfig(config: Buffer, archive: string): ImageConfigJson {
  try {
    const json = JSON.parse(config.toString('utf8')) as ImageConfigJson;
    if (!json || typeof json !== 'object') throw new Error('not an object');
    return json;
  } catch (err) {
    throw invalid(archive, 'the image config is not valid JSON', err);
  }
}

function platformFromConfig(c: ImageConfigJson): ImagePlatform {
  const p: ImagePlatform = { os: c.os ?? '', architecture: c.architecture ?? '' };
  if (c.variant) p.variant = c.variant;
  return p;
}

async function resolveLegacy(reader: ArchiveReader, options: ResolveOptions): Promise<ResolvedImage> {
  const archive = options.archiveName;
  const list = await readJson<Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>>(
    reader,
    'manifest.json',
    archive,
  );
  if (!Array.isArray(list) || list.length === 0) throw invalid(archive, 'manifest.json lists no images');
  let entry = list[0]!;
  if (options.archiveImage) {
    const found = list.find((e) => matchesRef(e.RepoTags ?? [], options.archiveImage!));
    if (!found) throw invalid(archive, `no image tagged "${options.archiveImage}" in manifest.json`);
    entry = found;
  } else if (list.length > 1) {
    throw invalid(archive, `it holds ${list.length} images; say which one with archiveImage`);
  }
  if (!entry.Config || !reader.has(entry.Config)) throw invalid(archive, 'the image config named in manifest.json is missing');
  const config = await reader.readSmall(entry.Config);
  const configJson = parseConfig(config, archive);
  const diffIds = configJson.rootfs?.diff_ids ?? [];
  const members = entry.Layers ?? [];
  if (diffIds.length !== members.length) {
    throw invalid(archive, `manifest.json lists ${members.length} layers but the config ${diffIds.length}`);
  }
  const layers: ArchiveLayer[] = [];
  for (const [i, member] of members.entries()) {
    if (!reader.has(member)) throw invalid(archive, `layer ${member} is missing`);
    layers.push({ member, compression: await reader.sniff(member), diffId: diffIds[i]! });
  }
  return {
    format: 'docker',
    config,
    configDigest: sha256(config),
    imageIds: [sha256(config)],
    configJson,
    layers,
    platform: platformFromConfig(configJson),
    repoTags: entry.RepoTags ?? [],
  };
}

/** Compression of bytes from their magic number. */
export function sniffCompression(head: Buffer): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}
