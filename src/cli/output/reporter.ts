/**
 * What every renderer takes: the SDK's events as they come, notes of the CLI itself, and the end
 * of the command (its outcome, or its failure). The renderers only present; the facts come from
 * the SDK's events, results and errors.
 */
import { ErrorCodes, isAstroError } from '../../core/errors.js';
import { redact } from '../../core/redact.js';
import { UsageError } from '../exit-codes.js';
import type { SdkEvent } from './format.js';

/** How a command ended well. */
export interface Outcome {
  command: string;
  exitCode: number;
  /** What the SDK resolved with (the `result` of the JSON line). */
  result: unknown;
  /** One line for people: what happened. */
  headline: string;
  /** Label and value pairs for people and the job summary (deployment, deploy id, type, ...). */
  facts: Array<[string, string]>;
  /** Rows of a listing. */
  table?: { columns: string[]; rows: string[][] };
}

/** How a command ended badly. */
export interface Failure {
  command: string | undefined;
  exitCode: number;
  error: unknown;
  /** What was known when it failed (deployment, deploy id), for the job summary. */
  facts: Array<[string, string]>;
}

export interface Reporter {
  event(event: SdkEvent): void;
  /** A message of the CLI itself (not an SDK event): never on stdout under --json. */
  note(message: string): void;
  result(outcome: Outcome): void;
  error(failure: Failure): void;
  /** Stop timers and restore the terminal. */
  close(): void;
}

/** The code of any failure: the SDK's, the CLI's usage code, or ASTRO_CLI_INTERNAL. */
export function errorCode(error: unknown): string {
  if (isAstroError(error)) return error.code;
  if (error instanceof UsageError) return error.code;
  return 'ASTRO_CLI_INTERNAL';
}

/** A redacted message for any failure. */
export function errorMessage(error: unknown): string {
  if (isAstroError(error)) return error.message;
  if (error instanceof Error) return redact(error.message);
  return redact(String(error));
}

/** The `{"type":"error", ...}` line: code, message, exit code and the SDK error's own fields (redacted by the SDK). */
export function errorJson(error: unknown, exitCode: number, command: string | undefined): Record<string, unknown> {
  const fields: Record<string, unknown> = isAstroError(error) ? error.toJSON() : {};
  delete fields.type;
  delete fields.code;
  delete fields.message;
  return {
    type: 'error',
    code: errorCode(error),
    message: errorMessage(error),
    exitCode,
    ...(command ? { command } : {}),
    ...fields,
  };
}

/** The lines people read about a failure: the message, then what the error carries that helps. */
export function errorLines(failure: Failure): string[] {
  const { error } = failure;
  const lines = [`${errorCode(error)}: ${errorMessage(error)}`];
  if (error instanceof UsageError) {
    lines.push(`Run astro-deploy ${error.command ? `${error.command} ` : ''}--help for the flags.`);
    return lines;
  }
  if (!isAstroError(error)) return lines;
  const e = error as unknown as Record<string, unknown>;
  if (typeof e.step === 'string') lines.push(`failing step: ${e.step}`);
  if (Array.isArray(e.outputTail) && e.outputTail.length) lines.push(...e.outputTail.slice(-20).map((l) => `  | ${String(l)}`));
  if (typeof e.output === 'string' && e.output.trim()) {
    const tail = e.output.trimEnd().split('\n').slice(-30);
    lines.push(`last ${tail.length} lines of the output:`, ...tail.map((l) => `  | ${l}`));
  }
  if (Array.isArray(e.fieldErrors) && e.fieldErrors.length) {
    for (const f of e.fieldErrors as Array<{ field?: string; message?: string }>) lines.push(`  ${f.field ?? ''}: ${f.message ?? ''}`);
  }
  if (typeof e.requestId === 'string') lines.push(`request id: ${e.requestId}`);
  if (typeof e.deployId === 'string') lines.push(deployNote(error.code, e.deployId, e.deployFinalized === true));
  return lines;
}

/**
 * What a failure means for the deploy it names (see the README, Left behind): `finalized` as the
 * error's `deployFinalized` says.
 */
function deployNote(code: string, deployId: string, finalized: boolean): string {
  if (code === ErrorCodes.FINALIZE_UNKNOWN) return `deploy ${deployId} may be finalized: check it before deploying again.`;
  if (finalized) {
    switch (code) {
      case ErrorCodes.ROLLOUT_FAILED:
      case ErrorCodes.ROLLOUT_TIMEOUT:
        return `deploy ${deployId} was finalized; its rollout is what did not finish.`;
      case ErrorCodes.DAGS_IMPORT_ERRORS:
      case ErrorCodes.DAGS_VERIFY_UNAVAILABLE:
        return `deploy ${deployId} was finalized and is live: a new deploy replaces it, or roll back (astro-deploy rollback).`;
      case ErrorCodes.ABORTED:
        return `deploy ${deployId} was finalized before the interruption: only the wait for its rollout was cut short (astro-deploy wait --deploy-id ${deployId}).`;
      default:
        return `deploy ${deployId} was finalized; the wait for its rollout failed, so it may be rolling out or live: check with astro-deploy wait --deploy-id ${deployId}.`;
    }
  }
  if (code === ErrorCodes.ABORTED) return `deploy ${deployId} was created before the interruption.`;
  return `deploy ${deployId} was created and not finalized: it changes nothing, and deploying again is safe.`;
}

/** Everything goes nowhere (the inner reporter of `--json --quiet` until the end, for instance). */
export class NullReporter implements Reporter {
  event(): void {}
  note(): void {}
  result(): void {}
  error(): void {}
  close(): void {}
}
