/**
 * Public types of the image module: sources, what an image looks like, push results and events.
 */
import type { DockerLike } from './docker-like.js';

/**
 * Where an image comes from.
 * - a string: a path to an existing `docker save` / OCI-layout tar archive (optionally gzipped)
 *   when such a file exists, otherwise an image name or ID in the Docker daemon;
 * - `{ archivePath }` or `{ imageName }` to say which, when a name could be mistaken for a path;
 * - `{ archive }`: an archive already opened by {@link openImageArchive}, so inspecting,
 *   validating and pushing it do not each open (and for a `.tar.gz`, gunzip) it again. The
 *   functions given it never close it; its opener does.
 * `archiveImage` picks one image from an archive holding several (by `RepoTags` or ref annotation).
 */
export type ImageSource =
  | string
  | { archivePath: string; archiveImage?: string }
  | { imageName: string }
  | { archive: ImageArchive; archiveImage?: string };

/**
 * An image archive opened once by {@link openImageArchive}: its tar index is read and, when the
 * archive itself is gzipped, it is gunzipped into a temp file. Pass it as `{ archive }` to
 * {@link inspectImage}, {@link validateImage} and {@link pushImage} (native method) as many times
 * as needed, then `close()` it, in a `finally`: that removes the temp copy. At run time it also
 * has `Symbol.asyncDispose` (when the runtime defines it, as Node 20 does) calling `close()`, for
 * `await using`.
 */
export interface ImageArchive {
  /** The archive path it was opened from, as given (what `ImageInfo.reference` reports). */
  readonly path: string;
  /** True when the archive was gzipped and is read from a gunzipped temp copy. */
  readonly gunzipped: boolean;
  /** True once {@link ImageArchive.close} was called. */
  readonly closed: boolean;
  /**
   * Remove the gunzipped temp copy, if one was made. Idempotent; never throws for an archive
   * already closed. Using the handle afterwards (or closing it while a push still reads it)
   * fails with `AstroConfigError` `ASTRO_CONFIG_INVALID_OPTION`.
   */
  close(): Promise<void>;
}

/** An OS/architecture pair as in image configs and OCI indexes. */
export interface ImagePlatform {
  os: string;
  architecture: string;
  variant?: string;
}

/** What the SDK knows about an image before pushing it. */
export interface ImageInfo {
  /** Where it was read from. */
  source: 'daemon' | 'archive';
  /** The image name, ID or archive path it was read from. */
  reference: string;
  /**
   * Digest of the image config, `sha256:...`. For a daemon image, the daemon's image ID: the
   * config digest under Docker's classic image store, but the digest of the image's manifest (or
   * index) under the containerd image store (Docker Desktop's default, and Docker Engine 29's for
   * new installs); pushes handle both.
   */
  configDigest: string;
  /**
   * For a daemon image under the containerd image store: the media type of the manifest or index
   * its ID names, when the daemon says (Engine API 1.48, Docker 28, and later).
   */
  manifestMediaType?: string;
  /** OS of the selected image, normally `linux`. */
  os: string;
  /** CPU architecture of the selected image, e.g. `amd64` or `arm64`. */
  architecture: string;
  /** Architecture variant (ARM only), e.g. `v8`. */
  variant?: string;
  /** Every platform an archive's multi-platform index offers (absent for single-platform images). */
  platforms?: ImagePlatform[];
  /** All image labels. */
  labels: Record<string, string>;
  /** `io.astronomer.docker.runtime.version`, when present. */
  runtimeVersion?: string;
  /** `io.astronomer.docker.airflow.version`, when present. */
  airflowVersion?: string;
  /** Uncompressed layer digests (`rootfs.diff_ids`), base layer first. */
  diffIds: string[];
  /** Tags the daemon or archive knows the image by. */
  repoTags: string[];
  /** Creation time from the config, ISO 8601. */
  created?: string;
}

/** Options shared by functions that may talk to the Docker daemon. */
export interface DockerOptions {
  /** Engine API client. @default a client for `DOCKER_HOST` (or the default socket) */
  docker?: DockerLike;
}

/** Registry credentials. On Astro: user `cli`, password the API token. */
export interface RegistryAuth {
  username: string;
  password: string;
}

/** Where to push: `repository` is `host[:port]/path`, `tag` the tag to create. */
export interface PushTarget {
  repository: string;
  tag: string;
}

/** One layer (or the config) in a push result. */
export interface PushedLayer {
  /**
   * Registry digest of the blob. For a daemon push the daemon only reports layer IDs, so this is
   * the layer's uncompressed digest (diff ID) when it could be matched, else the short ID.
   */
  digest: string;
  /** Bytes of the blob in the registry (native push); uncompressed bytes reported by the daemon (daemon push). */
  size: number;
  /** `pushed`: uploaded now; `skipped`: the registry already had it; `mounted`: linked from another repository. */
  status: 'pushed' | 'skipped' | 'mounted';
}

/** Result of {@link pushImage}. */
export interface PushResult {
  /** Digest of the manifest as stored by the registry. */
  digest: string;
  /** `repository:tag` that was pushed. */
  reference: string;
  /** `repository@digest`, the immutable reference. */
  canonicalReference: string;
  /**
   * Manifest media type. Method `auto` reads back what the daemon pushed. Method `daemon` under
   * Docker's containerd image store takes it from the daemon's description of the image (Docker
   * 28 and later); older daemons with that store do not say, and it is then given as the OCI
   * manifest type, which is what builds make (an image loaded from a `docker save` archive may be
   * a Docker manifest instead).
   */
  mediaType: string;
  /** Layers in manifest order (native push), or in the order the daemon reported them. */
  layers: PushedLayer[];
  /**
   * Request-body bytes sent to the registry, including re-sent bytes after faults (native push).
   * For a daemon push: the daemon's own (uncompressed) progress counts.
   */
  bytesSent: number;
  /** How the push was done: the method that pushed the manifest. */
  method: 'native' | 'daemon';
  /**
   * Set when method `auto` chose the daemon push and it failed (or was stopped, e.g. on its first
   * retry), so the native push did the push: the daemon push's error code and redacted message.
   */
  fallback?: { from: 'daemon'; code: string; reason: string };
}

/** Events of the image functions, through the `onEvent` option. Payloads never hold secrets. */
export type ImageEvent =
  | { type: 'image:push-start'; reference: string; method: 'native' | 'daemon' }
  /**
   * Method `auto` chose how to push, and why (`fallbackFrom`: the daemon push it chose first
   * failed, and the native push takes over).
   */
  | { type: 'image:push-method'; method: 'native' | 'daemon'; reason: string; fallbackFrom?: 'daemon' }
  /** A layer was read and (if needed) gzipped; `fromCache` when its digest came from the layer cache. */
  | { type: 'image:layer-prepared'; digest: string; size: number; diffId?: string; compressed: boolean; fromCache: boolean }
  | { type: 'image:layer-skipped'; digest: string; size: number }
  | { type: 'image:layer-mounted'; digest: string; size: number; from: string }
  /** Bytes of this blob the registry has confirmed so far (after each chunk). */
  | { type: 'image:layer-progress'; digest: string; bytesConfirmed: number; size: number }
  | {
      type: 'image:layer-retry';
      digest: string;
      /** 1-based retry count for this blob. */
      attempt: number;
      /** Redacted reason. */
      reason: string;
      /** `resume`: continuing at `resumeAt`; `restart`: a new upload session from byte 0; `verify`: checking whether a lost commit landed. */
      action: 'resume' | 'restart' | 'verify';
      resumeAt: number;
      delayMs: number;
      chunkSizeBytes: number;
    }
  | { type: 'image:layer-pushed'; digest: string; size: number; bytesSent: number }
  | { type: 'image:manifest-pushed'; digest: string; reference: string; mediaType: string }
  | { type: 'image:push-complete'; digest: string; reference: string; bytesSent: number; durationMs: number }
  /** Progress line of a daemon push (`status` as the daemon wrote it). */
  | { type: 'image:daemon-progress'; id?: string; status: string; current?: number; total?: number };
