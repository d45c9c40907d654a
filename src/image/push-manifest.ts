/**
 * Phase 4 of a native push: once every layer and the config are in the registry, `PUT` the
 * manifest under the tag (Docker v2 schema 2 unless asked for OCI, or a layer is zstd) and check
 * that the registry stored it under the digest we computed.
 */
import { ErrorCodes, ImageError } from '../core/errors.js';
import { withRetries } from '../core/retry.js';
import { digestOf } from './blob.js';
import { MediaTypes, type LayerCompression } from './layout.js';
import { toPushError, type LayerOutcome, type PushContext } from './push-context.js';
import { responseHeader } from './registry-client.js';

/** The manifest as stored. */
export interface PushedManifest {
  digest: string;
  mediaType: string;
  /** Bytes of the manifest (sent once, unless retried). */
  size: number;
}

function layerMediaType(format: 'docker' | 'oci', compression: LayerCompression): string {
  if (format === 'docker') return compression === 'none' ? MediaTypes.dockerLayer : MediaTypes.dockerLayerGzip;
  if (compression === 'zstd') return MediaTypes.ociLayerZstd;
  return compression === 'none' ? MediaTypes.ociLayer : MediaTypes.ociLayerGzip;
}

/** Build and `PUT` the manifest of `layers` and `config` under `tag`; retried like every registry call. */
export async function pushManifest(
  ctx: PushContext,
  tag: string,
  config: { digest: string; size: number },
  layers: LayerOutcome[],
  requested: 'docker' | 'oci' | undefined,
): Promise<PushedManifest> {
  const { registry, reference, signal } = ctx;
  const zstd = layers.some((o) => o.compression === 'zstd');
  const format = requested ?? (zstd ? 'oci' : 'docker');
  if (format === 'docker' && zstd) {
    throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, 'The image has zstd layers, which Docker manifests cannot describe; use manifestFormat "oci".', reference);
  }
  const mediaType = format === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: format === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig, digest: config.digest, size: config.size },
      layers: layers.map((o) => ({ mediaType: layerMediaType(format, o.compression), digest: o.digest, size: o.size })),
    }),
  );
  const digest = digestOf(manifest);
  try {
    await withRetries(
      async () => {
        const res = await registry.send(
          {
            method: 'PUT',
            url: `/v2/${registry.repository}/manifests/${tag}`,
            headers: { 'content-type': mediaType, 'content-length': String(manifest.length) },
            body: () => manifest,
            signal,
          },
          [200, 201, 202],
        );
        const stored = responseHeader(res.headers, 'docker-content-digest');
        if (stored && stored !== digest) {
          throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `The registry stored the manifest as ${stored}, expected ${digest}.`, reference);
        }
      },
      { policy: ctx.policy, signal },
    );
  } catch (err) {
    throw toPushError(err, reference, 'pushing the manifest');
  }
  ctx.emit({ type: 'image:manifest-pushed', digest, reference, mediaType });
  return { digest, mediaType, size: manifest.length };
}
