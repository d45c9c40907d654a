/**
 * Picks the renderer: `--json` (NDJSON), a live display on a terminal, plain lines otherwise;
 * in GitHub Actions, annotations and the job summary around it.
 */
import type { TextOutput } from './gate.js';
import { GithubReporter } from './github.js';
import { JsonReporter } from './json.js';
import { PlainReporter } from './plain.js';
import type { Reporter } from './reporter.js';
import { TtyReporter, type LiveArea } from './tty.js';

export type { Reporter, Outcome, Failure } from './reporter.js';
export type { SdkEvent } from './format.js';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  stdout: TextOutput;
  stderr: TextOutput;
  env: NodeJS.ProcessEnv;
}

export async function createReporter(o: OutputOptions): Promise<Reporter> {
  let reporter: Reporter;
  if (o.json) {
    reporter = new JsonReporter(o.stdout, o.stderr, o.quiet);
  } else if (o.stdout.isTTY && !o.quiet && o.env.TERM !== 'dumb' && o.stdout.rows !== 0 && o.stdout.columns !== 0) {
    // (A terminal of no size, as a pseudo-terminal nobody sized, could show no live area.)
    reporter = (await ttyReporter(o)) ?? new PlainReporter(o.stdout, o.stderr, o.quiet);
  } else {
    reporter = new PlainReporter(o.stdout, o.stderr, o.quiet);
  }
  if (o.env.GITHUB_ACTIONS === 'true') {
    reporter = new GithubReporter(reporter, o.json ? o.stderr : o.stdout, o.env.GITHUB_STEP_SUMMARY || undefined);
  }
  return reporter;
}

/** The live display, when log-update can be loaded (it is only ever loaded here). */
async function ttyReporter(o: OutputOptions): Promise<Reporter | undefined> {
  try {
    const { createLogUpdate } = await import('log-update');
    // log-update uses the stream's write, columns, rows and isTTY only: a gate (gate.ts) has them.
    const live = createLogUpdate(o.stdout as unknown as NodeJS.WritableStream) as unknown as LiveArea;
    const color = o.env.NO_COLOR === undefined || o.env.NO_COLOR === '';
    return new TtyReporter(live, o.stdout, o.stderr, color);
  } catch {
    return undefined;
  }
}
