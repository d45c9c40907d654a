/**
 * The terminal display: finished steps, warnings and recoveries scroll by as lines, and below them
 * one live line redrawn in place (log-update) shows the phase running now: bundle files, upload
 * bytes with rate and ETA, layers pushed, the build step and its last output, the tests, the
 * rollout state.
 */
import type { TextOutput } from './gate.js';
import { describeEvent, formatDuration, type SdkEvent } from './format.js';
import { ProgressModel } from './progress.js';
import { errorLines, type Failure, type Outcome, type Reporter } from './reporter.js';
import { table } from './plain.js';

/** What the renderer needs of log-update's `createLogUpdate(stream)`. */
export interface LiveArea {
  (...text: string[]): void;
  clear(): void;
  done(): void;
  persist(...text: string[]): void;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 100;
const BAR_WIDTH = 24;

/** ANSI colours, or none (NO_COLOR). */
export function palette(enabled: boolean) {
  const wrap = (open: number, close: number) => (text: string) => (enabled ? `\u001b[${open}m${text}\u001b[${close}m` : text);
  return { green: wrap(32, 39), yellow: wrap(33, 39), red: wrap(31, 39), cyan: wrap(36, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}

export class TtyReporter implements Reporter {
  private readonly model = new ProgressModel();
  private readonly timer: NodeJS.Timeout;
  private frame = 0;
  private closed = false;
  private readonly c: ReturnType<typeof palette>;

  constructor(
    private readonly live: LiveArea,
    private readonly stdout: TextOutput,
    private readonly stderr: TextOutput,
    color: boolean,
  ) {
    this.c = palette(color);
    this.timer = setInterval(() => this.render(), FRAME_MS);
    this.timer.unref();
  }

  private persist(text: string): void {
    this.live.persist(text);
    this.render();
  }

  event(event: SdkEvent): void {
    this.model.apply(event);
    const line = describeEvent(event);
    if (!line) return;
    if (line.level === 'info') this.persist(`${this.c.green('✔')} ${line.text}`);
    else if (line.level === 'warn') this.persist(`${this.c.yellow('!')} ${line.text}`);
    else if (line.level === 'retry') this.persist(`${this.c.cyan('↻')} ${line.text}`);
  }

  note(message: string): void {
    this.persist(`${this.c.yellow('!')} ${message}`);
  }

  private render(): void {
    if (this.closed) return;
    const status = this.model.status();
    if (!status) return;
    this.frame = (this.frame + 1) % SPINNER.length;
    const width = Math.max(40, (this.stdout.columns ?? 80) - 1);
    const bar = status.fraction !== undefined ? `${this.bar(status.fraction)} ` : '';
    const elapsed = this.c.dim(formatDuration(performance.now() - this.model.started));
    const text = `${this.c.cyan(SPINNER[this.frame]!)} ${this.c.bold(status.label.padEnd(11))} ${bar}${status.text} ${elapsed}`;
    this.live(clip(text, width));
  }

  private bar(fraction: number): string {
    const filled = Math.max(0, Math.min(BAR_WIDTH, Math.round(fraction * BAR_WIDTH)));
    return `${this.c.green('█'.repeat(filled))}${this.c.dim('░'.repeat(BAR_WIDTH - filled))}`;
  }

  result(outcome: Outcome): void {
    this.stop();
    const out: string[] = [];
    if (outcome.table) out.push(table(outcome.table));
    out.push(`${this.c.green('✔')} ${this.c.bold(outcome.headline)}`);
    for (const [label, value] of outcome.facts) out.push(`  ${this.c.dim(`${label}:`)} ${value}`);
    this.stdout.write(`${out.join('\n')}\n`);
  }

  error(failure: Failure): void {
    this.stop();
    const [first, ...rest] = errorLines(failure);
    this.stderr.write(`${this.c.red('✖')} ${this.c.red(first ?? '')}\n${rest.map((l) => `  ${l}\n`).join('')}`);
  }

  private stop(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.live.clear();
    this.live.done();
  }

  close(): void {
    this.stop();
  }
}

/** Cut a line (with ANSI codes) to `width` visible characters. */
function clip(text: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\u001b') {
      const end = text.indexOf('m', i);
      if (end > 0) {
        out += text.slice(i, end + 1);
        i = end;
        continue;
      }
    }
    if (visible >= width) continue;
    out += ch;
    visible += 1;
  }
  return out;
}
