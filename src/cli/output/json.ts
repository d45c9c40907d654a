/**
 * `--json`: NDJSON on stdout, one line per SDK event as the SDK typed it, then one last line,
 * `{"type":"result", ...}` or `{"type":"error", "code", "message", ...}`. Nothing else is written
 * to stdout; the CLI's own notes go to stderr. With `--quiet`, only the last line.
 */
import type { TextOutput } from './gate.js';
import type { SdkEvent } from './format.js';
import { errorJson, type Failure, type Outcome, type Reporter } from './reporter.js';

export class JsonReporter implements Reporter {
  constructor(
    private readonly stdout: TextOutput,
    private readonly stderr: TextOutput,
    private readonly quiet = false,
  ) {}

  private line(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  event(event: SdkEvent): void {
    if (!this.quiet) this.line(event);
  }

  note(message: string): void {
    if (!this.quiet) this.stderr.write(`${message}\n`);
  }

  result(outcome: Outcome): void {
    this.line({ type: 'result', command: outcome.command, exitCode: outcome.exitCode, result: outcome.result });
  }

  error(failure: Failure): void {
    this.line(errorJson(failure.error, failure.exitCode, failure.command));
  }

  close(): void {}
}
