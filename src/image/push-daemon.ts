/**
 * The daemon push: tag the image and let the Docker daemon push it (`POST /images/{name}/push`
 * with `X-Registry-Auth`), for users who prefer Docker's own pusher.
 *
 * The Engine API answers 200 and streams progress even when the push fails, so the stream is read
 * to the end: error lines become typed errors (a 403 or "denied" is mapped to its known causes),
 * and the manifest digest comes from the final `aux` line, or, where the daemon sends none (Docker's
 * containerd image store), from the `<tag>: digest: sha256:... size: N` status line.
 */
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { ErrorCodes, ImageError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { redact, registerSecret } from '../core/redact.js';
import { abortAware } from '../core/scope.js';
import { textLines } from '../core/text-lines.js';
import { dockerClient, engineCall } from './docker.js';
import { inspectDaemonImage } from './inspect.js';
import { checkPushMethod } from './push-method.js';
import { assertTag, splitRepository } from './push-native.js';
import { classifySource } from './source.js';
import type { DockerOptions, ImageEvent, ImageSource, PushedLayer, PushResult, PushTarget, RegistryAuth } from './types.js';
import { MediaTypes } from './layout.js';

/** Options of the daemon push. */
export interface DaemonPushOptions extends DockerOptions {
  auth?: RegistryAuth;
  /** Keep the `repository:tag` tag in the daemon after the push. @default false (removed, as the CLI does, when the image has another tag) */
  keepTag?: boolean;
  signal?: AbortSignal;
  /** Progress events. A listener that throws is ignored (noted on `logger` at debug level). */
  onEvent?: (e: ImageEvent) => void;
  /** Where the push notes what it ignores (a throwing listener), at debug level. @default silent */
  logger?: Logger;
}

interface ProgressLine {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  aux?: { Tag?: string; Digest?: string; Size?: number };
  error?: string;
  errorDetail?: { message?: string; code?: number };
}

/** Turn a daemon push error line into a typed error with advice. */
export function daemonPushError(message: string, reference: string): ImageError {
  const text = redact(message);
  if (/\b403\b|forbidden|denied|authentication required|unauthorized|\b401\b/i.test(text)) {
    return new ImageError(
      ErrorCodes.IMAGE_REGISTRY_AUTH,
      `The registry refused the push of ${reference}: ${text}. Known causes: an expired or wrong API token (on Astro the user ` +
        'is "cli" and the password the API token); stale credentials for this registry cached by `docker login` in ' +
        '~/.docker/config.json (run `docker logout <registry>`); or Docker Desktop\'s containerd image store, which is known ' +
        'to fail these pushes (turn it off, or use the native push).',
      reference,
    );
  }
  if (/server gave HTTP response to HTTPS client/i.test(text)) {
    return new ImageError(
      ErrorCodes.IMAGE_PUSH_FAILED,
      `The registry for ${reference} speaks plain HTTP and the daemon insists on HTTPS: ${text}. Add it to the daemon's ` +
        '"insecure-registries", or use the native push (method "native"), which can use plain HTTP.',
      reference,
    );
  }
  if (/connection refused|no such host|i\/o timeout|TLS handshake timeout|connection reset|EOF/i.test(text)) {
    return new ImageError(ErrorCodes.IMAGE_REGISTRY_UNAVAILABLE, `The daemon could not reach the registry for ${reference}: ${text}. Try again.`, reference, {
      retryable: true,
    });
  }
  return new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `The daemon failed to push ${reference}: ${text}`, reference);
}

/** The digest in a push's `<tag>: digest: sha256:<hex> size: <n>` status line, when `status` is that line. */
function digestOfStatus(status: string, tag: string): string | undefined {
  const m = /^(\S+): digest: (sha256:[0-9a-f]{64}) size: \d+$/.exec(status);
  return m && m[1] === tag ? m[2] : undefined;
}

/** Push through the Docker daemon. */
export async function pushDaemon(source: ImageSource, target: PushTarget, options: DaemonPushOptions = {}): Promise<PushResult> {
  const started = Date.now();
  const { host } = splitRepository(target.repository);
  assertTag(target.tag);
  const classified = await classifySource(source);
  checkPushMethod('daemon', classified);
  const where = classified as Extract<typeof classified, { kind: 'daemon' }>;
  const signal = options.signal;
  throwIfAborted(signal);
  const emit = emitterFor(options.onEvent, options.logger);
  const reference = `${target.repository}:${target.tag}`;
  const docker = await dockerClient(options.docker, 'push the image through the daemon');
  const info = await inspectDaemonImage(where.name, docker);
  emit({ type: 'image:push-start', reference, method: 'daemon' });

  const hadTag = info.repoTags.includes(reference);
  await engineCall('tag the image', where.name, () => docker.getImage(where.name).tag({ repo: target.repository, tag: target.tag }));
  if (options.auth) {
    registerSecret(options.auth.password);
  }
  const authconfig = options.auth ? { username: options.auth.username, password: options.auth.password, serveraddress: host } : { serveraddress: host };
  if (options.auth) registerSecret(Buffer.from(JSON.stringify(authconfig)).toString('base64url'));
  try {
    const stream = await engineCall('push the image', reference, () =>
      docker.getImage(reference).push({ tag: target.tag, authconfig, ...(signal ? { abortSignal: signal } : {}) }),
    );
    const layers = new Map<string, { status: PushedLayer['status'] | undefined; size: number }>();
    let digest: string | undefined;
    // The classic image store pushes a Docker manifest and says so in an `aux` line; the
    // containerd store pushes the manifest it holds, with no `aux` line (see PushResult.mediaType).
    let mediaType = info.manifestMediaType ?? MediaTypes.ociManifest;
    let failure: string | undefined;
    const handle = (line: string) => {
      if (!line.trim()) return;
      let msg: ProgressLine;
      try {
        msg = JSON.parse(line) as ProgressLine;
      } catch {
        return;
      }
      if (msg.error || msg.errorDetail?.message) {
        failure ??= msg.errorDetail?.message ?? msg.error;
        return;
      }
      if (msg.aux?.Digest) {
        digest = msg.aux.Digest;
        mediaType = MediaTypes.dockerManifest;
        return;
      }
      if (!msg.status) return;
      digest ??= digestOfStatus(msg.status, target.tag);
      const ev: ImageEvent = { type: 'image:daemon-progress', status: msg.status };
      if (msg.id) ev.id = msg.id;
      if (msg.progressDetail?.current !== undefined) ev.current = msg.progressDetail.current;
      if (msg.progressDetail?.total !== undefined) ev.total = msg.progressDetail.total;
      emit(ev);
      if (!msg.id || /^[^:]+: digest:/.test(msg.status)) return;
      const layer = layers.get(msg.id) ?? { status: undefined, size: 0 };
      if (msg.status === 'Pushing') layer.size = Math.max(layer.size, msg.progressDetail?.total ?? msg.progressDetail?.current ?? 0);
      else if (msg.status === 'Pushed') layer.status = 'pushed';
      else if (msg.status === 'Layer already exists') layer.status = 'skipped';
      else if (msg.status.startsWith('Mounted from')) layer.status = 'mounted';
      if (/^[0-9a-f]{12,64}$/.test(msg.id)) layers.set(msg.id, layer);
    };
    try {
      for await (const line of textLines(stream as AsyncIterable<Buffer | string>)) handle(line);
    } catch (err) {
      if (signal?.aborted) throw abortAware(err, signal);
      throw new ImageError(ErrorCodes.IMAGE_DOCKER_UNAVAILABLE, `The Docker daemon's push stream broke off: ${(err as Error).message}`, reference, {
        cause: err,
        retryable: true,
      });
    }
    if (failure) throw daemonPushError(failure, reference);
    if (!digest) throw new ImageError(ErrorCodes.IMAGE_PUSH_FAILED, `The daemon's push of ${reference} ended without reporting a digest.`, reference);

    const pushed: PushedLayer[] = [];
    for (const [id, l] of layers) {
      const full = info.diffIds.find((d) => d.slice('sha256:'.length).startsWith(id));
      pushed.push({ digest: full ?? id, size: l.size, status: l.status ?? 'pushed' });
    }
    const bytesSent = pushed.filter((l) => l.status === 'pushed').reduce((n, l) => n + l.size, 0);
    emit({ type: 'image:manifest-pushed', digest, reference, mediaType });
    emit({ type: 'image:push-complete', digest, reference, bytesSent, durationMs: Date.now() - started });
    return {
      digest,
      reference,
      canonicalReference: `${target.repository}@${digest}`,
      mediaType,
      layers: pushed,
      bytesSent,
      method: 'daemon',
    };
  } catch (err) {
    throw abortAware(err, signal);
  } finally {
    // Like the CLI, drop the remote tag again, but never the image's last name.
    if (!options.keepTag && !hadTag && info.repoTags.length > 0) {
      await docker
        .getImage(reference)
        .remove({ noprune: true })
        .catch(() => undefined);
    }
  }
}
