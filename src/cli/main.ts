#!/usr/bin/env node
/**
 * `astro-deploy`: the CLI over astro-deploy-sdk (the package's `bin`). Signals (signals.ts): the
 * first Ctrl-C (or SIGTERM) aborts the running SDK call through its signal, and the run ends with
 * 130 (143) once the SDK has stopped; a second one exits at once. stdout and stderr are gated
 * (output/gate.ts): when their reader goes away (`| head -1`), output stops and the run goes on.
 */
import { redact } from '../core/redact.js';
import { ExitCode } from './exit-codes.js';
import { gateOutput } from './output/gate.js';
import { run, type LastWords } from './run.js';
import { interruptions } from './signals.js';

const stdout = gateOutput(process.stdout);
const stderr = gateOutput(process.stderr);

let lastWords: LastWords = () => {};
const interrupts = interruptions({ lastWords: () => lastWords(), exit: (code) => process.exit(code) });
process.on('SIGINT', () => interrupts.onSignal('SIGINT'));
process.on('SIGTERM', () => interrupts.onSignal('SIGTERM'));

run(
  process.argv.slice(2),
  {
    stdout,
    stderr,
    stdoutClosed: (listener) => stdout.onClose(listener),
    env: process.env,
    cwd: process.cwd(),
    signal: interrupts.signal,
    interruptedBy: interrupts.interruptedBy,
  },
  (fn) => (lastWords = fn),
).then(
  (code) => exit(code),
  (error: unknown) => {
    stderr.write(`astro-deploy: ${redact(error instanceof Error ? (error.stack ?? error.message) : String(error))}\n`);
    exit(ExitCode.FAILED);
  },
);

/**
 * Exit once stdout has taken what was written (at once when its reader is gone): nothing left
 * running (keep-alive sockets, workers) holds the process.
 */
function exit(code: number): void {
  stdout.write('', () => process.exit(code));
}
