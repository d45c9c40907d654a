/**
 * Image archives made by hand, for tests that must not depend on the daemon's export format:
 * a legacy `docker save` layout, an OCI image layout (as current Docker writes it, plus
 * `manifest.json`), and multi-platform indexes. Layers are deterministic tars of small files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

const BLOCK = 512;

function header(name: string, size: number, type: '0' | '5' | '2', mode: number, linkName = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`fixture tar name too long: ${name}`);
  h.write(name, 0, 'utf8');
  h.write(mode.toString(8).padStart(7, '0') + '\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  h.write(linkName, 157, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** Entries of a fixture tar: files (content) and symlinks. */
export type TarSpec = Array<{ name: string; content: Buffer | string; mode?: number } | { name: string; symlink: string }>;

/** A deterministic tar (mtime 0, uid/gid 0). */
export function makeTar(entries: TarSpec): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if ('symlink' in e) {
      parts.push(header(e.name, 0, '2', 0o777, e.symlink));
      continue;
    }
    const data = typeof e.content === 'string' ? Buffer.from(e.content) : e.content;
    parts.push(header(e.name, data.length, '0', e.mode ?? 0o644));
    parts.push(data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hex = (d: string) => d.slice('sha256:'.length);

/** One layer: files inside it (content, or content with a mode, e.g. 0o755 for executables). */
export type LayerSpec = Record<string, Buffer | string | { content: Buffer | string; mode: number }>;

/** A config and layers for an image. */
export interface FixtureImage {
  config: Buffer;
  configDigest: string;
  /** Uncompressed layer tars. */
  layers: Buffer[];
  diffIds: string[];
}

/** Make an image: config JSON with the given platform and labels, layers from specs. */
export function makeImage(opts: {
  architecture?: string;
  os?: string;
  variant?: string;
  labels?: Record<string, string>;
  layers: LayerSpec[];
}): FixtureImage {
  const layers = opts.layers.map((spec) =>
    makeTar(
      Object.entries(spec).map(([name, c]) =>
        typeof c === 'string' || Buffer.isBuffer(c) ? { name, content: c } : { name, content: c.content, mode: c.mode },
      ),
    ),
  );
  const diffIds = layers.map((l) => sha256(l));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.architecture ?? 'amd64',
      os: opts.os ?? 'linux',
      ...(opts.variant ? { variant: opts.variant } : {}),
      created: '2024-01-01T00:00:00Z',
      config: { Labels: opts.labels ?? {}, Cmd: ['/bin/busybox', 'true'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'fixture' })),
    }),
  );
  return { config, configDigest: sha256(config), layers, diffIds };
}

/** Write a legacy `docker save` archive (`<id>/layer.tar`, `<config>.json`, manifest.json). */
export async function writeLegacyArchive(path: string, image: FixtureImage, repoTag: string, opts: { gzip?: boolean; linkDuplicate?: boolean } = {}): Promise<void> {
  const entries: TarSpec = [];
  const layerPaths: string[] = [];
  let first: string | undefined;
  for (const [i, layer] of image.layers.entries()) {
    const id = createHash('sha256').update(`${i}-${hex(image.diffIds[i]!)}`).digest('hex');
    const p = `${id}/layer.tar`;
    entries.push({ name: `${id}/VERSION`, content: '1.0' });
    entries.push({ name: `${id}/json`, content: JSON.stringify({ id }) });
    // docker save links a repeated layer to the first copy instead of storing it twice.
    if (opts.linkDuplicate && first && i > 0) entries.push({ name: p, symlink: `../${first.split('/')[0]}/layer.tar` });
    else entries.push({ name: p, content: layer });
    first ??= p;
    layerPaths.push(p);
  }
  const configName = `${hex(image.configDigest)}.json`;
  entries.push({ name: configName, content: image.config });
  entries.push({ name: 'manifest.json', content: JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerPaths }]) });
  const tar = makeTar(entries);
  await writeFile(path, opts.gzip ? gzipSync(tar) : tar);
}

interface OciManifestParts {
  manifest: Buffer;
  manifestDigest: string;
  blobs: Map<string, Buffer>;
}

function ociManifest(image: FixtureImage, compressLayers: boolean): OciManifestParts {
  const blobs = new Map<string, Buffer>();
  blobs.set(image.configDigest, image.config);
  const layers = image.layers.map((l) => {
    const data = compressLayers ? gzipSync(l) : l;
    const digest = sha256(data);
    blobs.set(digest, data);
    return {
      mediaType: compressLayers ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
      digest,
      size: data.length,
    };
  });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.configDigest, size: image.config.length },
      layers,
    }),
  );
  const manifestDigest = sha256(manifest);
  blobs.set(manifestDigest, manifest);
  return { manifest, manifestDigest, blobs };
}

/**
 * Write an OCI image layout archive. With several images it writes a multi-platform index
 * (platforms from each config); `omit` leaves some platforms' blobs out, as the containerd image
 * store does.
 */
export async function writeOciArchive(
  path: string,
  images: FixtureImage[],
  opts: {
    refName?: string;
    compressLayers?: boolean;
    withDockerManifest?: boolean;
    omitPlatforms?: string[];
    /** One top-level entry per image, named, without a platform: `docker save a b` of the containerd image store. */
    refNames?: string[];
  } = {},
): Promise<{ indexDigest?: string; manifestDigests: string[] }> {
  const allBlobs = new Map<string, Buffer>();
  const descs: object[] = [];
  const manifestDigests: string[] = [];
  for (const image of images) {
    const parts = ociManifest(image, opts.compressLayers ?? false);
    const cfg = JSON.parse(image.config.toString()) as { os: string; architecture: string; variant?: string };
    const plat = `${cfg.os}/${cfg.architecture}`;
    if (!opts.omitPlatforms?.includes(plat)) for (const [d, b] of parts.blobs) allBlobs.set(d, b);
    manifestDigests.push(parts.manifestDigest);
    descs.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: parts.manifestDigest,
      size: parts.manifest.length,
      platform: { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) },
    });
  }
  const annotations = opts.refName ? { 'io.containerd.image.name': opts.refName, 'org.opencontainers.image.ref.name': 'latest' } : undefined;
  let top: object | object[];
  let indexDigest: string | undefined;
  if (opts.refNames) {
    top = descs.map((d, i) => {
      const { platform: _platform, ...rest } = d as { platform?: unknown };
      return { ...rest, annotations: { 'io.containerd.image.name': opts.refNames![i], 'org.opencontainers.image.ref.name': opts.refNames![i]!.split(':').pop() } };
    });
  } else if (images.length === 1) {
    top = { ...(descs[0] as object), ...(annotations ? { annotations } : {}) };
  } else {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descs }));
    indexDigest = sha256(index);
    allBlobs.set(indexDigest, index);
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, ...(annotations ? { annotations } : {}) };
  }
  const entries: TarSpec = [
    { name: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: Array.isArray(top) ? top : [top] }) },
  ];
  for (const [d, b] of allBlobs) entries.push({ name: `blobs/sha256/${hex(d)}`, content: b });
  if (opts.withDockerManifest && images.length === 1) {
    const image = images[0]!;
    const parts = ociManifest(image, opts.compressLayers ?? false);
    const layerDigests = [...parts.blobs.keys()].filter((d) => d !== image.configDigest && d !== parts.manifestDigest);
    entries.push({
      name: 'manifest.json',
      content: JSON.stringify([
        { Config: `blobs/sha256/${hex(image.configDigest)}`, RepoTags: opts.refName ? [opts.refName] : [], Layers: layerDigests.map((d) => `blobs/sha256/${hex(d)}`) },
      ]),
    });
  }
  await writeFile(path, makeTar(entries));
  return indexDigest ? { indexDigest, manifestDigests } : { manifestDigests };
}

/** Random (incompressible) bytes. */
export const noise = (bytes: number) => randomBytes(bytes);
