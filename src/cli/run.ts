/**
 * One run of the CLI: parse, pick the renderer, run the command, report its end and return the
 * exit code. The process (signals, exit) is main.ts's.
 */
import { AstroAbortError } from '../core/errors.js';
import { SDK_VERSION } from '../version.js';
import { helpText, parseCommandLine, type Invocation } from './args.js';
import { ExitCode, exitCodeOf } from './exit-codes.js';
import { writeErrorCode, type TextOutput } from './output/gate.js';
import { createReporter, type Reporter } from './output/index.js';

export interface RunIO {
  stdout: TextOutput;
  stderr: TextOutput;
  /**
   * Calls `listener` once stdout's reader has gone away (main.ts: the gate's `onClose`): the run
   * says so on stderr and goes on to its end.
   */
  stdoutClosed?: (listener: (error: Error) => void) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Aborted on the first Ctrl-C (or SIGTERM); `interruptedBy()` then names the signal. */
  signal: AbortSignal;
  interruptedBy: () => 'SIGINT' | 'SIGTERM' | undefined;
}

/** Called by main.ts on a second interrupt, just before it exits: the last words of the run. */
export type LastWords = () => void;

export async function run(argv: readonly string[], io: RunIO, setLastWords: (fn: LastWords) => void = () => {}): Promise<number> {
  let invocation: Invocation;
  const json = argv.includes('--json');
  try {
    invocation = parseCommandLine(argv);
  } catch (error) {
    const reporter = await createReporter({ json, quiet: false, stdout: io.stdout, stderr: io.stderr, env: io.env });
    const exitCode = exitCodeOf(error);
    reporter.error({ command: argv[0] && !argv[0].startsWith('-') ? argv[0] : undefined, exitCode, error, facts: [] });
    reporter.close();
    return exitCode;
  }
  if (invocation.kind === 'help') {
    io.stdout.write(`${helpText(invocation.command)}\n`);
    return ExitCode.OK;
  }
  if (invocation.kind === 'version') {
    io.stdout.write(`astro-deploy ${SDK_VERSION}\n`);
    return ExitCode.OK;
  }

  const { command, values } = invocation;
  const name = invocation.subcommand ? `${command.name} ${invocation.subcommand}` : command.name;
  const reporter: Reporter = await createReporter({ json: values.json === true, quiet: values.quiet === true, stdout: io.stdout, stderr: io.stderr, env: io.env });
  const facts: Array<[string, string]> = [];
  const onAbort = () => reporter.note('interrupted: stopping (press Ctrl-C again to exit at once)');
  io.signal.addEventListener('abort', onAbort, { once: true });
  let ended = false;
  // Not an interruption: the deploy goes on to its end, finalized, and its exit code stands.
  io.stdoutClosed?.((error) => {
    if (!ended) reporter.note(`stdout was closed by its reader (${writeErrorCode(error)}): no more output there; astro-deploy ${name} goes on to its end, and the exit code says how it ended.`);
  });
  setLastWords(() => {
    const code = io.interruptedBy() === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
    reporter.error({ command: name, exitCode: code, error: new AstroAbortError('Interrupted twice: exited at once, without waiting for the SDK to stop.'), facts });
    reporter.close();
  });
  try {
    // Loaded here, so --help and usage errors do not load the SDK.
    const { runCommand } = await import('./commands.js');
    const outcome = await runCommand({
      command,
      ...(invocation.subcommand ? { subcommand: invocation.subcommand } : {}),
      values,
      cwd: io.cwd,
      signal: io.signal,
      reporter,
      facts,
    });
    reporter.result(outcome);
    return outcome.exitCode;
  } catch (error) {
    const exitCode = exitCodeOf(error, io.interruptedBy());
    reporter.error({ command: name, exitCode, error, facts });
    return exitCode;
  } finally {
    ended = true;
    io.signal.removeEventListener('abort', onAbort);
    setLastWords(() => {});
    reporter.close();
  }
}

