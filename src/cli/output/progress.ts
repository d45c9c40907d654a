/**
 * What is in progress, from the SDK's events: the phase running now and its counters (bundle
 * files, upload bytes with rate and ETA, layers pushed, build step, tests, rollout state). The
 * terminal renderer draws it live; the plain renderer prints it now and then.
 */
import type { RolloutSnapshot } from '../../core/errors.js';
import { formatBytes, formatDuration, rolloutState, type SdkEvent } from './format.js';

export type Phase = 'check' | 'bundle' | 'build' | 'tests' | 'create' | 'upload' | 'push' | 'finalize' | 'rollout' | 'update';

/** Bytes over time, for a rate over the last few seconds and an ETA. */
export class RateMeter {
  private samples: Array<{ t: number; bytes: number }> = [];
  constructor(
    private readonly windowMs = 5000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(bytes: number): void {
    const t = this.now();
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[1]!.t > this.windowMs) this.samples.shift();
  }

  /** Bytes per second over the window, once two samples are at least 200 ms apart. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 200) return undefined;
    return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
  }

  /** Milliseconds until `total`, at the current rate. */
  eta(total: number): number | undefined {
    const rate = this.rate();
    const last = this.samples[this.samples.length - 1];
    if (!rate || rate <= 0 || !last) return undefined;
    return ((total - last.bytes) * 1000) / rate;
  }
}

export class ProgressModel {
  phase: Phase | undefined;
  readonly started = performance.now();
  bundle = { files: 0, totalFiles: 0, bytes: 0 };
  upload = { acked: 0, total: 0, retries: 0, meter: new RateMeter() };
  push = { layers: new Map<string, { size: number; confirmed: number; done: boolean }>(), retries: 0, meter: new RateMeter() };
  build = { step: '', index: undefined as number | undefined, total: undefined as number | undefined, lastLine: '' };
  tests = { suite: '', lastLine: '' };
  rollout: RolloutSnapshot | undefined;
  retries = 0;

  /** Update from an event; true when what is shown changed. */
  apply(event: SdkEvent): boolean {
    switch (event.type) {
      case 'deploy:checked':
        this.phase = 'check';
        return true;
      case 'bundle:scan-complete':
        this.phase = 'bundle';
        this.bundle = { files: 0, totalFiles: event.totalFiles, bytes: 0 };
        return true;
      case 'bundle:progress':
        this.bundle = { files: event.files, totalFiles: event.totalFiles, bytes: event.bytes };
        return true;
      case 'build:start':
        this.phase = 'build';
        return true;
      case 'build:step':
        if (event.status === 'started' || event.status === 'cached') {
          this.build.step = event.name;
          this.build.index = event.index;
          this.build.total = event.total;
          this.build.lastLine = '';
        }
        return true;
      case 'build:output':
        this.build.lastLine = event.line;
        return true;
      case 'tests:suite':
        if (event.status === 'started') {
          this.phase = 'tests';
          this.tests = { suite: event.suite, lastLine: '' };
        }
        return true;
      case 'tests:output': {
        const last = event.chunk.split('\n').filter((l) => l.trim() !== '').pop();
        if (last) this.tests.lastLine = last;
        return true;
      }
      case 'deploy:created':
        this.phase = 'create';
        return true;
      case 'upload:start':
        this.phase = 'upload';
        this.upload.total = event.totalBytes;
        this.upload.meter.add(0);
        return true;
      case 'upload:resumed':
        this.upload.acked = event.bytesSkipped;
        return true;
      case 'upload:progress':
        this.phase = 'upload';
        this.upload.acked = event.bytesAcked;
        this.upload.total = event.totalBytes;
        this.upload.meter.add(event.bytesAcked);
        return true;
      case 'upload:retry':
        this.upload.retries += 1;
        this.retries += 1;
        return true;
      case 'image:push-start':
        this.phase = 'push';
        this.push.meter.add(0);
        return true;
      case 'image:layer-prepared':
        if (!this.push.layers.has(event.digest)) this.push.layers.set(event.digest, { size: event.size, confirmed: 0, done: false });
        return true;
      case 'image:layer-skipped':
      case 'image:layer-mounted':
      case 'image:layer-pushed':
        this.push.layers.set(event.digest, { size: event.size, confirmed: event.size, done: true });
        this.push.meter.add(this.pushedBytes());
        return true;
      case 'image:layer-progress': {
        const layer = this.push.layers.get(event.digest) ?? { size: event.size, confirmed: 0, done: false };
        layer.confirmed = event.bytesConfirmed;
        this.push.layers.set(event.digest, layer);
        this.push.meter.add(this.pushedBytes());
        return true;
      }
      case 'image:layer-retry':
        this.push.retries += 1;
        this.retries += 1;
        return true;
      case 'deploy:finalized':
      case 'deploy:finalize-recovered':
        this.phase = 'finalize';
        return true;
      case 'rollout:poll':
      case 'rollout:change':
      case 'rollout:complete':
        this.phase = 'rollout';
        this.rollout = event.snapshot;
        return true;
      case 'api:retry':
      case 'rollout:poll-error':
        this.retries += 1;
        return true;
      case 'dag-deploy:warning':
        this.phase = 'update';
        return true;
      default:
        return false;
    }
  }

  pushedBytes(): number {
    let n = 0;
    for (const l of this.push.layers.values()) n += l.confirmed;
    return n;
  }

  pushTotal(): number {
    let n = 0;
    for (const l of this.push.layers.values()) n += l.size;
    return n;
  }

  /** The phase running now, as words and a fraction done (when known). */
  status(): { label: string; text: string; fraction?: number } | undefined {
    switch (this.phase) {
      case 'check':
        return { label: 'checking', text: 'deployment and image' };
      case 'bundle': {
        const b = this.bundle;
        return {
          label: 'bundling',
          // Files, not bytes: the bundle's content size is only known once it is packed.
          text: `${b.files}/${b.totalFiles} files, ${formatBytes(b.bytes)}`,
          ...(b.totalFiles > 0 ? { fraction: b.files / b.totalFiles } : {}),
        };
      }
      case 'build': {
        const b = this.build;
        const step = b.step ? `${b.index !== undefined && b.total ? `[${b.index}/${b.total}] ` : ''}${b.step}` : 'sending the context';
        return { label: 'building', text: b.lastLine ? `${step} | ${b.lastLine}` : step, ...(b.index !== undefined && b.total ? { fraction: (b.index - 1) / b.total } : {}) };
      }
      case 'tests':
        return { label: 'testing', text: `${this.tests.suite}${this.tests.lastLine ? ` | ${this.tests.lastLine}` : ''}` };
      case 'create':
        return { label: 'creating', text: 'the deploy' };
      case 'upload': {
        const u = this.upload;
        return {
          label: 'uploading',
          text: `${formatBytes(u.acked)} / ${formatBytes(u.total)}${rateText(u.meter, u.total)}${u.retries ? `, ${u.retries} retried` : ''}`,
          ...(u.total > 0 ? { fraction: u.acked / u.total } : {}),
        };
      }
      case 'push': {
        const layers = [...this.push.layers.values()];
        const total = this.pushTotal();
        const done = this.pushedBytes();
        return {
          label: 'pushing',
          text: `${layers.filter((l) => l.done).length}/${layers.length} layers, ${formatBytes(done)} / ${formatBytes(total)}${rateText(this.push.meter, total)}${this.push.retries ? `, ${this.push.retries} retried` : ''}`,
          ...(total > 0 ? { fraction: done / total } : {}),
        };
      }
      case 'finalize':
        return { label: 'finalizing', text: 'the deploy' };
      case 'rollout':
        return this.rollout
          ? { label: 'rolling out', text: `${rolloutState(this.rollout)}, poll ${this.rollout.polls}, ${formatDuration(this.rollout.elapsedMs)}` }
          : { label: 'rolling out', text: '' };
      case 'update':
        return { label: 'updating', text: 'the deployment' };
      default:
        return undefined;
    }
  }
}

function rateText(meter: RateMeter, total: number): string {
  const rate = meter.rate();
  if (rate === undefined) return '';
  const eta = meter.eta(total);
  return `, ${formatBytes(Math.round(rate))}/s${eta !== undefined && eta > 0 ? `, ETA ${formatDuration(eta)}` : ''}`;
}
