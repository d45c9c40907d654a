/**
 * The CLI's exit codes, one per class of outcome, so a CI job can branch on them without parsing
 * output. Documented in the README (CLI, Exit codes).
 */
import { ErrorCodes, isAstroError, type AstroErrorCode } from '../core/errors.js';

export const ExitCode = {
  /** Deployed, or skipped as unchanged; any other command succeeded. */
  OK: 0,
  /** The deploy (or the command) failed. */
  FAILED: 1,
  /** Usage or configuration: bad flags, no or invalid token, unknown or ambiguous deployment. */
  USAGE: 2,
  /** The rollout failed or did not finish within the wait. */
  ROLLOUT: 3,
  /** The DAGs do not import: the tests gate (parse check, pytest) or the check after the rollout. */
  TESTS: 4,
  /** Interrupted (Ctrl-C, SIGINT). */
  INTERRUPTED: 130,
  /** Terminated (SIGTERM). */
  TERMINATED: 143,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** A usage error of the CLI itself (flags, commands): exit 2, code `ASTRO_CLI_USAGE`. */
export class UsageError extends Error {
  readonly code = 'ASTRO_CLI_USAGE';
  constructor(
    message: string,
    /** The command whose help to point at. */
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** SDK codes that mean the input (flags, token, project files, deployment choice) must change. */
const CONFIGURATION: ReadonlySet<string> = new Set<AstroErrorCode>([
  ErrorCodes.CONFIG_MISSING_TOKEN,
  ErrorCodes.CONFIG_INVALID_TOKEN,
  ErrorCodes.CONFIG_TOKEN_EXPIRED,
  ErrorCodes.CONFIG_MISSING_ORGANIZATION,
  ErrorCodes.CONFIG_INVALID_OPTION,
  ErrorCodes.INSECURE_URL,
  ErrorCodes.API_UNAUTHORIZED,
  ErrorCodes.API_FORBIDDEN,
  ErrorCodes.BUNDLE_DIR_NOT_FOUND,
  ErrorCodes.PROJECT_NOT_FOUND,
  ErrorCodes.PROJECT_INVALID,
  ErrorCodes.DEPLOYMENT_NOT_FOUND,
  ErrorCodes.DEPLOYMENT_AMBIGUOUS,
]);

const ROLLOUT: ReadonlySet<string> = new Set<AstroErrorCode>([ErrorCodes.ROLLOUT_FAILED, ErrorCodes.ROLLOUT_TIMEOUT]);
/** The tests gate, and the DAG check after the rollout (`--verify-dags`): the DAGs do not import. */
const TESTS: ReadonlySet<string> = new Set<AstroErrorCode>([ErrorCodes.IMAGE_PARSE_FAILED, ErrorCodes.PROJECT_TESTS_FAILED, ErrorCodes.DAGS_IMPORT_ERRORS]);

/** The exit code of an SDK (or CLI) error code: the class it belongs to. */
export function exitCodeForCode(code: string): ExitCodeValue {
  if (code === 'ASTRO_CLI_USAGE' || CONFIGURATION.has(code)) return ExitCode.USAGE;
  if (ROLLOUT.has(code)) return ExitCode.ROLLOUT;
  if (TESTS.has(code)) return ExitCode.TESTS;
  if (code === ErrorCodes.ABORTED) return ExitCode.INTERRUPTED;
  return ExitCode.FAILED;
}

/**
 * The exit code of a failure. `signal` is the signal that interrupted the run, if one did: a run
 * that fails after it is 130 (SIGINT) or 143 (SIGTERM), whatever the SDK reported.
 */
export function exitCodeOf(error: unknown, signal?: 'SIGINT' | 'SIGTERM'): ExitCodeValue {
  if (signal) return signal === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
  if (error instanceof UsageError) return ExitCode.USAGE;
  if (!isAstroError(error)) return ExitCode.FAILED;
  return exitCodeForCode(error.code);
}
