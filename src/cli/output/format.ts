/**
 * Human text for the SDK's events, shared by the terminal and plain renderers: one line per event
 * worth a line, with a level that says how to show it. Only formatting: every fact comes from the
 * event.
 */
import type { ClientEvent } from '../../client/events.js';
import type { DeployDagsEvent } from '../../client/deploy-dags.js';
import type { DeployImageEvent } from '../../client/deploy-image.js';
import type { DeployProjectEvent } from '../../client/deploy-project.js';
import type { RolloutSnapshot } from '../../core/errors.js';

/** Every event the CLI's commands receive from the SDK. */
export type SdkEvent = DeployDagsEvent | DeployImageEvent | DeployProjectEvent | ClientEvent;

/**
 * `info`: a step done; `warn`: something to act on; `retry`: a recovery; `detail`: fine-grained
 * (plain output only); `output`: a line a build or test printed (plain output only).
 */
export type LineLevel = 'info' | 'warn' | 'retry' | 'detail' | 'output';

export interface Line {
  level: LineLevel;
  text: string;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1.5 MiB`. */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
}

/** `850ms`, `4.2s`, `2m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The first characters of a digest or version, for a line. */
export function short(id: string | undefined, n = 12): string {
  if (!id) return '-';
  const bare = id.replace(/^sha256:/, '');
  return bare.length > n ? `${bare.slice(0, n)}…` : bare;
}

const line = (level: LineLevel, text: string): Line => ({ level, text });

/** The line an event deserves, if any. Unknown event types (newer SDK features) with a `message` get one too. */
export function describeEvent(event: SdkEvent): Line | undefined {
  switch (event.type) {
    case 'deploy:queued':
      return line('info', `waiting for an earlier deploy to ${event.deploymentId} from this process`);
    case 'deploy:checked':
      return line(
        'info',
        `deployment ${event.deploymentId}${event.runtimeVersion ? `: runtime ${event.runtimeVersion}` : ''}${event.syntax ? `, .airflowignore syntax ${event.syntax}` : ''}`,
      );
    case 'bundle:scan-complete':
      return line('detail', `bundle: ${event.totalFiles} files to pack, ${event.excluded} excluded`);
    case 'bundle:warning':
      return line('warn', `bundle: ${event.warning.message} [${event.warning.code}]`);
    case 'bundle:complete':
      return line('info', `bundle: ${event.files} files (${formatBytes(event.contentBytes)}), ${formatBytes(event.bytes)} gzipped, fingerprint ${short(event.fingerprint)} (${formatDuration(event.durationMs)})`);
    case 'deploy:created':
      return line('info', `deploy ${event.deployId} created (${event.deployType}${event.imageTag && event.deployType !== 'DAG_ONLY' ? `, image tag ${event.imageTag}` : ''})`);
    case 'upload:start':
      return line(
        'detail',
        `upload: ${formatBytes(event.totalBytes)} ${event.mode === 'single' ? 'in one request' : `in ${formatBytes(event.blockSizeBytes)} blocks, ${event.concurrency} at a time`}`,
      );
    case 'upload:resumed':
      return line('retry', `upload: resumed, ${event.blocksSkipped} blocks (${formatBytes(event.bytesSkipped)}) already staged (${event.via})`);
    case 'upload:retry':
      return line(
        'retry',
        `upload: ${event.phase}${event.blockIndex !== undefined ? ` #${event.blockIndex}` : ''} failed (${event.cause}${event.status ? ` ${event.status}` : ''}); retry ${event.attempt} in ${formatDuration(event.delayMs)}`,
      );
    case 'upload:block-size':
      return line('detail', `upload: block size ${formatBytes(event.fromBytes)} -> ${formatBytes(event.toBytes)} (${event.reason})`);
    case 'upload:concurrency':
      return line('detail', `upload: concurrency ${event.from} -> ${event.to} (${event.reason})`);
    case 'upload:warning':
      return line('warn', `upload: ${event.message} [${event.code}]`);
    case 'upload:committed':
      return line('info', `upload: ${formatBytes(event.bytes)} committed in ${event.blocks} block${event.blocks === 1 ? '' : 's'}, version ${short(event.versionId, 24)}`);
    case 'deploy:image-validated':
      return line('info', `image ${event.reference}: ${event.platform}${event.runtimeVersion ? `, runtime ${event.runtimeVersion}` : ''}, checks passed`);
    case 'image:push-start':
      return line('info', `push: ${event.reference} (${event.method})`);
    case 'image:push-method':
      return event.fallbackFrom
        ? line('retry', `push: ${event.reason}; the native push takes over`)
        : line('info', `push: by the ${event.method === 'daemon' ? "daemon's own push" : 'native push'} (${event.reason})`);
    case 'image:layer-skipped':
      return line('detail', `push: layer ${short(event.digest)} (${formatBytes(event.size)}) already in the registry`);
    case 'image:layer-mounted':
      return line('detail', `push: layer ${short(event.digest)} (${formatBytes(event.size)}) mounted from ${event.from}`);
    case 'image:layer-pushed':
      return line('detail', `push: layer ${short(event.digest)} (${formatBytes(event.size)}) pushed`);
    case 'image:layer-retry':
      return line('retry', `push: layer ${short(event.digest)}: ${event.reason}; ${event.action} at ${formatBytes(event.resumeAt)}, retry ${event.attempt} in ${formatDuration(event.delayMs)}`);
    case 'image:manifest-pushed':
      return line('detail', `push: manifest ${short(event.digest)}`);
    case 'image:push-complete':
      return line('info', `push: done, ${formatBytes(event.bytesSent)} sent in ${formatDuration(event.durationMs)}, digest ${short(event.digest)}`);
    case 'build:start':
      return line('info', `build: ${event.projectDir} (${event.builder} builder, ${event.platform})`);
    case 'build:step':
      if (event.status === 'failed') return line('warn', `build: step failed: ${event.name}`);
      if (event.status === 'started' || event.status === 'cached') {
        return line('detail', `build: ${event.index !== undefined && event.total ? `[${event.index}/${event.total}] ` : ''}${event.name}${event.status === 'cached' ? ' (cached)' : ''}`);
      }
      return undefined;
    case 'build:output':
      return line('output', event.line);
    case 'build:complete':
      return line('info', `build: ${event.tag} (${short(event.imageId)}), ${event.steps} steps, ${event.cachedSteps} cached, ${formatDuration(event.durationMs)}`);
    case 'tests:suite':
      switch (event.status) {
        case 'started':
          return line('info', `tests: ${event.suite} started`);
        case 'passed':
          return line('info', `tests: ${event.suite} passed${event.durationMs !== undefined ? ` (${formatDuration(event.durationMs)})` : ''}`);
        case 'failed':
          return line('warn', `tests: ${event.suite} failed (exit ${event.exitCode})`);
        case 'skipped':
          return line('info', `tests: ${event.suite} skipped (${event.reason})`);
        default:
          return undefined;
      }
    case 'tests:output':
      return line('output', event.chunk.replace(/\n$/, ''));
    case 'tests:warning':
      return line('warn', `tests: ${event.message}`);
    case 'deploy:finalize-recovered':
      return line('retry', `finalize: answer lost (${event.reason}); the deploy record shows it took`);
    case 'deploy:finalized':
      return line(
        'info',
        `deploy ${event.deployId} finalized${event.dagTarballVersion ? `, DAG version ${short(event.dagTarballVersion, 24)}` : ''}${event.imageTag ? `, image tag ${event.imageTag}` : ''}`,
      );
    case 'rollout:change':
      return line('detail', `rollout: ${rolloutState(event.snapshot)}`);
    case 'rollout:poll-error':
      return line('retry', `rollout: a poll failed (${event.errorCode ?? 'error'}); polling on`);
    case 'rollout:complete':
      return line('info', `rollout: ${event.snapshot.deploymentStatus} after ${event.snapshot.polls} poll${event.snapshot.polls === 1 ? '' : 's'}, ${formatDuration(event.snapshot.elapsedMs)}`);
    case 'api:retry':
      return line('retry', `api: ${event.method} ${event.path} failed (${event.errorCode ?? event.errorMessage}); retry ${event.attempt} in ${formatDuration(event.delayMs)}`);
    case 'deploy:impact':
      return line('info', `impact: ${event.impact.summary}`);
    case 'deploy:git':
      return event.metadata
        ? line('detail', `git: commit ${short(event.metadata.commitSha, 10)}${event.metadata.branch ? ` on ${event.metadata.branch}` : ''} (${event.metadata.provider})`)
        : line('warn', `git: no metadata sent (${event.skipped ?? 'unknown'}${event.detail ? `: ${event.detail}` : ''})`);
    case 'rollback:target':
      return line(
        'info',
        `rollback: to deploy ${event.targetDeployId}${event.currentDeployId ? ` (from ${event.currentDeployId})` : ''}${event.imageTag ? `, image tag ${event.imageTag}` : ''}${event.dagTarballVersion ? `, DAG version ${short(event.dagTarballVersion, 24)}` : ''}`,
      );
    case 'rollback:started':
      return line(event.recovered ? 'retry' : 'info', `rollback: deploy ${event.deployId} started${event.recovered ? ' (its answer was lost; found in the deploy list)' : ''}`);
    case 'rollout:dags-verified':
      return !event.checked
        ? line('warn', 'DAG check: the Airflow API could not be asked')
        : line(event.importErrors ? 'warn' : 'info', `DAG check: ${event.importErrors} import error${event.importErrors === 1 ? '' : 's'} in the shipped files${event.otherImportErrors ? `, ${event.otherImportErrors} in others` : ''}`);
    case 'dag-deploy:warning':
      return line('warn', event.message);
    case 'dag-deploy:unchanged':
      return line('info', `DAG deploys already ${event.enabled ? 'enabled' : 'disabled'} on ${event.deploymentId}; nothing sent`);
    case 'dag-deploy:updated':
      return line('info', `DAG deploys ${event.enabled ? 'enabled' : 'disabled'} on ${event.deploymentId} (read back)`);
    default: {
      const other = event as { type: string; message?: unknown };
      return typeof other.message === 'string' ? line('info', `${other.type.split(':')[0]}: ${other.message}`) : undefined;
    }
  }
}

/** `DEPLOYING, deploy INITIALIZED, DAG version a -> b, image tag t`. */
export function rolloutState(s: Partial<RolloutSnapshot>): string {
  const parts = [s.deploymentStatus ?? 'unknown'];
  if (s.deploymentStatusReason) parts[0] += ` (${s.deploymentStatusReason})`;
  if (s.deployStatus) parts.push(`deploy ${s.deployStatus}`);
  if (s.desiredDagTarballVersion && s.desiredDagTarballVersion !== s.dagTarballVersion) {
    parts.push(`DAG version ${short(s.dagTarballVersion, 40)} -> ${short(s.desiredDagTarballVersion, 40)}`);
  }
  if (s.imageTag) parts.push(`image tag ${s.imageTag}`);
  return parts.join(', ');
}
