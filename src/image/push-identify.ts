/**
 * Phase 1 of a native push: what is the image? For an archive, open it (unless the caller's
 * `{ archive }` is already open) and resolve the image in it; for a daemon image, ask the daemon
 * for its layers and ID. Nothing is uploaded or exported yet.
 */
import { dockerClient, imageIdIsConfigDigest } from './docker.js';
import { inspectDaemonImage } from './inspect.js';
import { resolveImage, type ResolvedImage } from './layout.js';
import { classifySource, DiskArchive } from './source.js';
import type { DockerOptions, ImagePlatform, ImageSource } from './types.js';

/** An identified image: its uncompressed layer digests, and where its bytes will come from. */
export type IdentifiedImage =
  | {
      kind: 'archive';
      archive: DiskArchive;
      /** True when the push opened the archive and must close it (a caller's `{ archive }` stays open). */
      owned: boolean;
      image: ResolvedImage;
      diffIds: string[];
    }
  | {
      kind: 'daemon';
      name: string;
      diffIds: string[];
      /** The daemon's ID of the image (see {@link imageIdIsConfigDigest}). */
      imageId: string;
      /** The config digest, when the ID is one (the classic image store); else learnt from an export. */
      configDigest: string | undefined;
    };

/** Options of {@link identifyImage}. */
export interface IdentifyOptions extends DockerOptions {
  /** Platform to pick from a multi-platform archive. @default linux/amd64 */
  platform?: ImagePlatform;
  /** Folder for the gunzipped copy of a `.tar.gz` archive. */
  tempDir?: string;
}

/** Identify `source` (see the module comment). An archive opened here is closed again when this throws. */
export async function identifyImage(source: ImageSource, options: IdentifyOptions, signal: AbortSignal): Promise<IdentifiedImage> {
  const where = await classifySource(source);
  if (where.kind === 'daemon') {
    const docker = await dockerClient(options.docker, 'read the image from the daemon');
    const info = await inspectDaemonImage(where.name, docker);
    const imageId = info.configDigest;
    return { kind: 'daemon', name: where.name, diffIds: info.diffIds, imageId, configDigest: (await imageIdIsConfigDigest(docker)) ? imageId : undefined };
  }
  const owned = !where.archive;
  const archive = where.archive ? (where.archive as DiskArchive) : await DiskArchive.open(where.path, signal, options.tempDir);
  try {
    const image = await resolveImage(archive, {
      archiveName: where.path,
      platform: options.platform ?? { os: 'linux', architecture: 'amd64' },
      ...(where.archiveImage ? { archiveImage: where.archiveImage } : {}),
    });
    return { kind: 'archive', archive, owned, image, diffIds: image.layers.map((l) => l.diffId ?? '') };
  } catch (err) {
    if (owned) await archive.close();
    throw err;
  }
}
