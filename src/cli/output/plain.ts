/**
 * Plain lines, for logs and pipes (stdout is not a terminal): one line per step, warning and
 * recovery, the output of builds and tests as it comes, and the progress of long transfers every
 * few seconds. Errors go to stderr. `--quiet` keeps the errors only.
 */
import type { TextOutput } from './gate.js';
import { describeEvent, type SdkEvent } from './format.js';
import { ProgressModel } from './progress.js';
import { errorLines, type Failure, type Outcome, type Reporter } from './reporter.js';

/** Least time between two progress lines of one transfer. */
const PROGRESS_EVERY_MS = 2000;

export class PlainReporter implements Reporter {
  private readonly model = new ProgressModel();
  private lastProgress = 0;

  constructor(
    private readonly stdout: TextOutput,
    private readonly stderr: TextOutput,
    private readonly quiet = false,
    private readonly now: () => number = () => performance.now(),
  ) {}

  private print(text: string): void {
    if (!this.quiet) this.stdout.write(`${text}\n`);
  }

  event(event: SdkEvent): void {
    this.model.apply(event);
    // A transfer's first progress line comes a few seconds in: a short one shows none.
    if (event.type === 'upload:start' || event.type === 'image:push-start' || event.type === 'bundle:scan-complete') this.lastProgress = this.now();
    const line = describeEvent(event);
    if (line) {
      if (line.level === 'output') {
        for (const l of line.text.split('\n')) this.print(`  | ${l}`);
      } else {
        this.print(line.level === 'warn' ? `warning: ${line.text}` : line.text);
      }
    }
    if (event.type === 'upload:progress' || event.type === 'image:layer-progress' || event.type === 'bundle:progress') {
      const t = this.now();
      const status = this.model.status();
      const done = status?.fraction !== undefined && status.fraction >= 1;
      if (status && !done && t - this.lastProgress >= PROGRESS_EVERY_MS) {
        this.lastProgress = t;
        const pct = status.fraction !== undefined ? ` ${Math.floor(status.fraction * 100)}%` : '';
        this.print(`${status.label}${pct}: ${status.text}`);
      }
    }
  }

  note(message: string): void {
    if (!this.quiet) this.stderr.write(`${message}\n`);
  }

  result(outcome: Outcome): void {
    if (this.quiet) return;
    if (outcome.table) this.print(table(outcome.table));
    this.print(outcome.headline);
    for (const [label, value] of outcome.facts) this.print(`  ${label}: ${value}`);
  }

  error(failure: Failure): void {
    for (const line of errorLines(failure)) this.stderr.write(`${line}\n`);
  }

  close(): void {}
}

/** Columns padded to their widest cell. */
export function table(t: { columns: string[]; rows: string[][] }): string {
  const widths = t.columns.map((c, i) => Math.max(c.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [fmt(t.columns), ...t.rows.map(fmt)].join('\n');
}
