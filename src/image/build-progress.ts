/**
 * Reading what the daemon says while it builds, for both builders, into one shape: steps that
 * start, are found in the cache, finish or fail; output lines attributed to their step; the
 * image ID; the error.
 *
 * - The classic builder writes JSON lines whose `stream` text carries `Step i/n : INSTRUCTION`,
 *   ` ---> Using cache`, ` ---> Running in <container>` and the steps' own output.
 * - BuildKit writes `{"id":"moby.buildkit.trace","aux":"<base64>"}` lines whose payload is a
 *   protobuf `moby.buildkit.v1.StatusResponse` (vertexes with name, cached, started, completed
 *   and error; logs with their vertex), decoded here by a reader of the few fields it needs.
 * - Both end with the image ID (`aux.ID`, or the `moby.image.id` line) or an `error`/`errorDetail`
 *   line, which the daemon sends with status 200: the stream itself never fails a build.
 */
import { StringDecoder } from 'node:string_decoder';

/** How a step went, as {@link BuildProgress} reports it. */
export type BuildStepStatus = 'started' | 'cached' | 'done' | 'failed';

/** One step of a build: an instruction of the Dockerfile (BuildKit's internal vertexes are not steps). */
export interface BuildStep {
  /** The step as the builder names it: `RUN pip install ...` (classic) or `[2/5] RUN pip install ...` (BuildKit). */
  name: string;
  /** 1-based position in its stage, when the builder gives it. */
  index?: number;
  /** Steps in its stage, when the builder gives it. */
  total?: number;
  /** Whether the result came from the build cache. */
  cached: boolean;
  /** Run time in milliseconds, once finished. */
  durationMs?: number;
}

/** What the readers report, in order. */
export interface BuildProgressSink {
  step(step: BuildStep, status: BuildStepStatus): void;
  output(line: string, step: string | undefined): void;
}

/** Lines kept per step (and overall) for the error of a failed build. */
export const OUTPUT_TAIL_LINES = 50;

class Tail {
  readonly lines: string[] = [];
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > OUTPUT_TAIL_LINES) this.lines.shift();
  }
}

/** The shared state of both readers. */
export abstract class BuildProgress {
  /** Steps seen so far, in the order they started. */
  readonly steps: BuildStep[] = [];
  /** The image ID, once the daemon reported it. */
  imageId: string | undefined;
  /** The daemon's error message, when the build failed. */
  error: string | undefined;
  /** The step that failed (or was running when the error came). */
  failedStep: string | undefined;
  protected readonly overall = new Tail();
  protected readonly perStep = new Map<string, Tail>();

  constructor(protected readonly sink: BuildProgressSink) {}

  /** Feed one parsed JSON line of the build stream. */
  abstract line(message: Record<string, unknown>): void;
  /** The stream ended: close the last step. */
  abstract end(): void;

  /** The last output lines of the failed step when it printed any, else of the whole build. */
  outputTail(): string[] {
    const own = this.failedStep ? this.perStep.get(this.failedStep)?.lines : undefined;
    return [...(own?.length ? own : this.overall.lines)];
  }

  protected output(line: string, step: string | undefined): void {
    this.overall.push(line);
    if (step) {
      let tail = this.perStep.get(step);
      if (!tail) this.perStep.set(step, (tail = new Tail()));
      tail.push(line);
    }
    this.sink.output(line, step);
  }

  protected takeError(message: Record<string, unknown>): boolean {
    if (message.error === undefined && message.errorDetail === undefined) return false;
    const detail = message.errorDetail as { message?: unknown } | undefined;
    this.error = String(detail?.message ?? message.error ?? 'unknown build error');
    return true;
  }
}

const STEP_LINE = /^Step (\d+)\/(\d+) : (.*)$/;
// eslint-disable-next-line no-control-regex
const ANSI_SGR = /\x1b\[[0-9;]*m/g;

/** Reader of the classic builder's stream. */
export class ClassicBuildProgress extends BuildProgress {
  private pending = '';
  private current: { step: BuildStep; startedAt: number } | undefined;
  /** The container running the current `RUN` step, so an abort can remove it. */
  runningContainer: string | undefined;
  /** Every container a `RUN` step ran in, in order (the build's intermediate containers). */
  readonly containers: string[] = [];
  /**
   * The image the next step's container is created from: the last ` ---> <id>` line (the base
   * image after `FROM`, then each step's result).
   */
  parentImage: string | undefined;
  /**
   * True while a step has started and no line has named its container or its result yet: the
   * daemon may be creating that step's container, which an abort then leaves unnamed.
   */
  containerPending = false;

  line(message: Record<string, unknown>): void {
    if (this.takeError(message)) {
      if (this.current) {
        this.failedStep = this.current.step.name;
        this.sink.step(this.current.step, 'failed');
        this.current = undefined;
      }
      return;
    }
    const aux = message.aux as { ID?: unknown } | undefined;
    if (aux && typeof aux.ID === 'string') this.imageId = aux.ID;
    if (typeof message.stream !== 'string') return;
    this.pending += message.stream;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const text = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      this.text(text);
    }
  }

  private text(raw: string): void {
    // The classic builder colours a step's stderr (`ESC[91m` ... `ESC[0m`): keep the text only.
    const text = raw.replace(ANSI_SGR, '');
    const step = STEP_LINE.exec(text);
    if (step) {
      this.finish();
      const s: BuildStep = { name: step[3]!, index: Number(step[1]), total: Number(step[2]), cached: false };
      this.steps.push(s);
      this.current = { step: s, startedAt: Date.now() };
      this.containerPending = !/^FROM\b/i.test(s.name);
      this.sink.step(s, 'started');
      return;
    }
    if (/^ ---> Using cache$/.test(text)) {
      if (this.current) {
        this.current.step.cached = true;
        this.sink.step(this.current.step, 'cached');
      }
      return;
    }
    if (/^ ---> /.test(text)) this.containerPending = false;
    const running = /^ ---> Running in ([0-9a-f]+)$/.exec(text);
    if (running) {
      this.runningContainer = running[1];
      this.containers.push(running[1]!);
      return;
    }
    const image = /^ ---> ([0-9a-f]{12,64})$/.exec(text);
    if (image) {
      this.parentImage = image[1];
      return;
    }
    if (/^ ---> /.test(text) || /^Removing intermediate container /.test(text) || /^Successfully (built|tagged) /.test(text)) {
      if (/^Removing intermediate container /.test(text)) this.runningContainer = undefined;
      return;
    }
    if (text === '') return;
    this.output(text, this.current?.step.name);
  }

  private finish(): void {
    if (!this.current) return;
    const { step, startedAt } = this.current;
    this.current = undefined;
    step.durationMs = Date.now() - startedAt;
    if (!step.cached) this.sink.step(step, 'done');
  }

  end(): void {
    if (this.pending) this.text(this.pending);
    this.pending = '';
    if (this.error === undefined) this.finish();
  }
}

// --- A protobuf reader for the fields of StatusResponse that the SDK uses. -------------------

type Field = { no: number; wire: number; value: bigint | Buffer };

function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new RangeError('truncated protobuf varint');
      const byte = buf[pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { no, wire, value: varint() };
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new RangeError('truncated protobuf field');
      yield { no, wire, value: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new RangeError(`unsupported protobuf wire type ${wire}`);
  }
}

/** A `google.protobuf.Timestamp` in milliseconds. */
function timestampMs(buf: Buffer): number {
  let seconds = 0n;
  let nanos = 0n;
  for (const f of fields(buf)) {
    if (f.no === 1 && typeof f.value === 'bigint') seconds = f.value;
    if (f.no === 2 && typeof f.value === 'bigint') nanos = f.value;
  }
  return Number(seconds) * 1000 + Math.floor(Number(nanos) / 1e6);
}

/** A vertex of BuildKit's solve graph, as StatusResponse describes it. */
export interface TraceVertex {
  digest: string;
  name: string;
  cached: boolean;
  startedMs?: number;
  completedMs?: number;
  error?: string;
}

/** A log chunk of a vertex. */
export interface TraceLog {
  vertex: string;
  msg: Buffer;
}

/**
 * Decode a `moby.buildkit.v1.StatusResponse` (vertexes and logs; statuses and warnings skipped).
 * @internal exported for tests.
 */
export function decodeStatusResponse(buf: Buffer): { vertexes: TraceVertex[]; logs: TraceLog[] } {
  const vertexes: TraceVertex[] = [];
  const logs: TraceLog[] = [];
  for (const f of fields(buf)) {
    if (!Buffer.isBuffer(f.value)) continue;
    if (f.no === 1) {
      const v: TraceVertex = { digest: '', name: '', cached: false };
      for (const g of fields(f.value)) {
        if (g.no === 1 && Buffer.isBuffer(g.value)) v.digest = g.value.toString('utf8');
        else if (g.no === 3 && Buffer.isBuffer(g.value)) v.name = g.value.toString('utf8');
        else if (g.no === 4 && typeof g.value === 'bigint') v.cached = g.value !== 0n;
        else if (g.no === 5 && Buffer.isBuffer(g.value)) v.startedMs = timestampMs(g.value);
        else if (g.no === 6 && Buffer.isBuffer(g.value)) v.completedMs = timestampMs(g.value);
        else if (g.no === 7 && Buffer.isBuffer(g.value)) v.error = g.value.toString('utf8');
      }
      vertexes.push(v);
    } else if (f.no === 3) {
      const log: TraceLog = { vertex: '', msg: Buffer.alloc(0) };
      for (const g of fields(f.value)) {
        if (g.no === 1 && Buffer.isBuffer(g.value)) log.vertex = g.value.toString('utf8');
        else if (g.no === 4 && Buffer.isBuffer(g.value)) log.msg = g.value;
      }
      logs.push(log);
    }
  }
  return { vertexes, logs };
}

/** `[2/5] RUN ...` or `[stage-1 2/5] RUN ...`: a Dockerfile instruction (not an internal vertex). */
const STEP_VERTEX = /^\[(?:[^\]\s]+ )?(\d+)\/(\d+)\] (.*)$/s;

/** Reader of BuildKit's stream. */
export class BuildKitProgress extends BuildProgress {
  private readonly vertexes = new Map<string, { name: string; step?: BuildStep; status?: BuildStepStatus }>();
  private readonly partial = new Map<string, string>();
  /** Per vertex: its log messages may split a character between them. */
  private readonly decoders = new Map<string, StringDecoder>();

  line(message: Record<string, unknown>): void {
    if (this.takeError(message)) return;
    if (message.id === 'moby.image.id') {
      const aux = message.aux as { ID?: unknown } | undefined;
      if (aux && typeof aux.ID === 'string') this.imageId = aux.ID;
      return;
    }
    if (message.id !== 'moby.buildkit.trace' || typeof message.aux !== 'string') return;
    let decoded: ReturnType<typeof decodeStatusResponse>;
    try {
      decoded = decodeStatusResponse(Buffer.from(message.aux, 'base64'));
    } catch {
      return; // A trace the reader cannot decode only costs progress detail, never the build.
    }
    for (const v of decoded.vertexes) this.vertex(v);
    for (const log of decoded.logs) this.log(log);
  }

  private vertex(v: TraceVertex): void {
    let known = this.vertexes.get(v.digest);
    if (!known) {
      known = { name: v.name };
      const m = STEP_VERTEX.exec(v.name);
      if (m) {
        known.step = { name: v.name, index: Number(m[1]), total: Number(m[2]), cached: false };
      }
      this.vertexes.set(v.digest, known);
    }
    const step = known.step;
    if (v.error) {
      this.failedStep ??= v.name;
      if (step && known.status !== 'failed') {
        known.status = 'failed';
        this.sink.step(step, 'failed');
      }
      return;
    }
    if (!step) return;
    if (v.cached && known.status !== 'cached') {
      if (!this.steps.includes(step)) this.steps.push(step);
      step.cached = true;
      known.status = 'cached';
      this.sink.step(step, 'cached');
      return;
    }
    if (v.startedMs !== undefined && known.status === undefined) {
      this.steps.push(step);
      known.status = 'started';
      this.sink.step(step, 'started');
    }
    if (v.completedMs !== undefined && known.status === 'started') {
      if (v.startedMs !== undefined) step.durationMs = Math.max(0, v.completedMs - v.startedMs);
      known.status = 'done';
      this.sink.step(step, 'done');
    }
  }

  private log(log: TraceLog): void {
    const name = this.vertexes.get(log.vertex)?.name;
    let decoder = this.decoders.get(log.vertex);
    if (!decoder) this.decoders.set(log.vertex, (decoder = new StringDecoder('utf8')));
    const text = (this.partial.get(log.vertex) ?? '') + decoder.write(log.msg);
    const lines = text.split('\n');
    this.partial.set(log.vertex, lines.pop()!);
    for (const line of lines) {
      const clean = line.replace(/\r$/, '');
      if (clean !== '') this.output(clean, name);
    }
  }

  end(): void {
    for (const [vertex, decoder] of this.decoders) this.partial.set(vertex, (this.partial.get(vertex) ?? '') + decoder.end());
    for (const [vertex, rest] of this.partial) {
      if (rest !== '') this.output(rest, this.vertexes.get(vertex)?.name);
    }
    this.partial.clear();
    this.decoders.clear();
  }
}
