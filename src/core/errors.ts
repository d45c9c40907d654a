/**
 * The error family of astro-deploy-sdk.
 *
 * Every error the SDK throws is an {@link AstroError} with a stable {@link AstroErrorCode}. Match on
 * `code` (or use {@link isAstroError}) rather than `instanceof` when your process may load both the
 * ESM and the CommonJS build: `instanceof` is made to work across those copies through a
 * `Symbol.for` brand, but codes are the contract.
 *
 * Messages say what to do next and never contain a token or a SAS signature: every message and
 * every `cause` is passed through {@link redact} when the error is built.
 */
import { redact } from './redact.js';

const BRAND = Symbol.for('astro-deploy-sdk.error');
const KINDS = Symbol.for('astro-deploy-sdk.error.kinds');

/** Every stable error code, grouped by area. */
export const ErrorCodes = {
  // Configuration
  CONFIG_MISSING_TOKEN: 'ASTRO_CONFIG_MISSING_TOKEN',
  CONFIG_INVALID_TOKEN: 'ASTRO_CONFIG_INVALID_TOKEN',
  CONFIG_TOKEN_EXPIRED: 'ASTRO_CONFIG_TOKEN_EXPIRED',
  CONFIG_MISSING_ORGANIZATION: 'ASTRO_CONFIG_MISSING_ORGANIZATION',
  CONFIG_INVALID_OPTION: 'ASTRO_CONFIG_INVALID_OPTION',
  /** A credential would go over plain http to a host that is not loopback (registries; see `assertSecureUrl`). */
  INSECURE_URL: 'ASTRO_INSECURE_URL',
  // HTTP API
  API_BAD_REQUEST: 'ASTRO_API_BAD_REQUEST',
  API_UNAUTHORIZED: 'ASTRO_API_UNAUTHORIZED',
  API_FORBIDDEN: 'ASTRO_API_FORBIDDEN',
  API_NOT_FOUND: 'ASTRO_API_NOT_FOUND',
  API_CONFLICT: 'ASTRO_API_CONFLICT',
  API_REQUEST_TIMEOUT: 'ASTRO_API_REQUEST_TIMEOUT',
  API_RATE_LIMITED: 'ASTRO_API_RATE_LIMITED',
  API_SERVER_ERROR: 'ASTRO_API_SERVER_ERROR',
  API_ERROR: 'ASTRO_API_ERROR',
  API_SCHEMA: 'ASTRO_API_SCHEMA',
  // Transport
  CONNECTION: 'ASTRO_CONNECTION',
  TIMEOUT: 'ASTRO_TIMEOUT',
  ABORTED: 'ASTRO_ABORTED',
  // Deploy flows
  DAG_DEPLOY_DISABLED: 'ASTRO_DAG_DEPLOY_DISABLED',
  DAG_DEPLOY_NOT_APPLIED: 'ASTRO_DAG_DEPLOY_NOT_APPLIED',
  CICD_ENFORCED: 'ASTRO_CICD_ENFORCED',
  DEPLOY_REFUSED: 'ASTRO_DEPLOY_REFUSED',
  ROLLOUT_FAILED: 'ASTRO_ROLLOUT_FAILED',
  ROLLOUT_TIMEOUT: 'ASTRO_ROLLOUT_TIMEOUT',
  FINALIZE_UNKNOWN: 'ASTRO_FINALIZE_UNKNOWN',
  /** `requireClean`: the folder that ships has uncommitted changes (or git could not tell). */
  GIT_UNCOMMITTED_CHANGES: 'ASTRO_GIT_UNCOMMITTED_CHANGES',
  // Finding deployments, rollbacks, DAG verification after a rollout
  DEPLOYMENT_NOT_FOUND: 'ASTRO_DEPLOYMENT_NOT_FOUND',
  DEPLOYMENT_AMBIGUOUS: 'ASTRO_DEPLOYMENT_AMBIGUOUS',
  ROLLBACK_NO_TARGET: 'ASTRO_ROLLBACK_NO_TARGET',
  ROLLBACK_REFUSED: 'ASTRO_ROLLBACK_REFUSED',
  DAGS_IMPORT_ERRORS: 'ASTRO_DAGS_IMPORT_ERRORS',
  DAGS_VERIFY_UNAVAILABLE: 'ASTRO_DAGS_VERIFY_UNAVAILABLE',
  // Bundling
  BUNDLE_DIR_NOT_FOUND: 'ASTRO_BUNDLE_DIR_NOT_FOUND',
  BUNDLE_EMPTY: 'ASTRO_BUNDLE_EMPTY',
  BUNDLE_SYMLINK_ESCAPE: 'ASTRO_BUNDLE_SYMLINK_ESCAPE',
  BUNDLE_SYMLINK_LOOP: 'ASTRO_BUNDLE_SYMLINK_LOOP',
  BUNDLE_IGNORE_INVALID: 'ASTRO_BUNDLE_IGNORE_INVALID',
  BUNDLE_HIDDEN_IMPORT: 'ASTRO_BUNDLE_HIDDEN_IMPORT',
  BUNDLE_IO: 'ASTRO_BUNDLE_IO',
  BUNDLE_DIR_REACHED_TWICE: 'ASTRO_BUNDLE_DIR_REACHED_TWICE',
  BUNDLE_OUTPUT_INSIDE_DAGS: 'ASTRO_BUNDLE_OUTPUT_INSIDE_DAGS',
  BUNDLE_FILE_CHANGED: 'ASTRO_BUNDLE_FILE_CHANGED',
  BUNDLE_INVALID_FILENAME: 'ASTRO_BUNDLE_INVALID_FILENAME',
  /** A bundle made with one `.airflowignore` syntax, deployed to a deployment whose Airflow applies the other. */
  BUNDLE_SYNTAX_MISMATCH: 'ASTRO_BUNDLE_SYNTAX_MISMATCH',
  // Uploads
  UPLOAD_FAILED: 'ASTRO_UPLOAD_FAILED',
  /** Other uploads of the same blob kept committing while this one staged its blocks; `maxRestages` rounds were spent. */
  UPLOAD_CONFLICT: 'ASTRO_UPLOAD_CONFLICT',
  UPLOAD_REJECTED: 'ASTRO_UPLOAD_REJECTED',
  UPLOAD_SAS_EXPIRED: 'ASTRO_UPLOAD_SAS_EXPIRED',
  UPLOAD_NO_VERSION_ID: 'ASTRO_UPLOAD_NO_VERSION_ID',
  UPLOAD_SOURCE_CHANGED: 'ASTRO_UPLOAD_SOURCE_CHANGED',
  UPLOAD_INVALID_URL: 'ASTRO_UPLOAD_INVALID_URL',
  UPLOAD_SOURCE_UNREADABLE: 'ASTRO_UPLOAD_SOURCE_UNREADABLE',
  UPLOAD_TOO_LARGE: 'ASTRO_UPLOAD_TOO_LARGE',
  // Images
  IMAGE_DOCKER_UNAVAILABLE: 'ASTRO_IMAGE_DOCKER_UNAVAILABLE',
  /** A daemon path needs dockerode, an optional peer dependency, and it is not installed. */
  IMAGE_DOCKERODE_MISSING: 'ASTRO_IMAGE_DOCKERODE_MISSING',
  IMAGE_NOT_FOUND: 'ASTRO_IMAGE_NOT_FOUND',
  IMAGE_PLATFORM_MISMATCH: 'ASTRO_IMAGE_PLATFORM_MISMATCH',
  IMAGE_NOT_RUNTIME: 'ASTRO_IMAGE_NOT_RUNTIME',
  IMAGE_RUNTIME_DOWNGRADE: 'ASTRO_IMAGE_RUNTIME_DOWNGRADE',
  IMAGE_RUNTIME_UNSUPPORTED: 'ASTRO_IMAGE_RUNTIME_UNSUPPORTED',
  IMAGE_AIRFLOW3_UPGRADE_BLOCKED: 'ASTRO_IMAGE_AIRFLOW3_UPGRADE_BLOCKED',
  IMAGE_INVALID_ARCHIVE: 'ASTRO_IMAGE_INVALID_ARCHIVE',
  IMAGE_PUSH_FAILED: 'ASTRO_IMAGE_PUSH_FAILED',
  IMAGE_REGISTRY_AUTH: 'ASTRO_IMAGE_REGISTRY_AUTH',
  IMAGE_PARSE_FAILED: 'ASTRO_IMAGE_PARSE_FAILED',
  IMAGE_REGISTRY_UNAVAILABLE: 'ASTRO_IMAGE_REGISTRY_UNAVAILABLE',
  IMAGE_PARSE_CHECK_ERROR: 'ASTRO_IMAGE_PARSE_CHECK_ERROR',
  IMAGE_BUILD_FAILED: 'ASTRO_IMAGE_BUILD_FAILED',
  IMAGE_BUILDKIT_UNAVAILABLE: 'ASTRO_IMAGE_BUILDKIT_UNAVAILABLE',
  // Astro projects
  PROJECT_NOT_FOUND: 'ASTRO_PROJECT_NOT_FOUND',
  PROJECT_INVALID: 'ASTRO_PROJECT_INVALID',
  PROJECT_TESTS_FAILED: 'ASTRO_PROJECT_TESTS_FAILED',
} as const;

/** A stable, documented error code. */
export type AstroErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Options accepted by every error constructor. */
export interface AstroErrorOptions {
  /** The underlying error; redacted before it is attached. */
  cause?: unknown;
  /** Whether retrying the same operation may succeed. @default false */
  retryable?: boolean;
}

/**
 * Base class of every error thrown by the SDK.
 *
 * @example
 * ```ts
 * try { await client.deployDags({ deploymentId, dagsDir }) }
 * catch (err) { if (isAstroError(err, 'ASTRO_DAG_DEPLOY_DISABLED')) { ... } }
 * ```
 */
export class AstroError extends Error {
  /** Class name used for cross-copy `instanceof`. */
  static readonly kind: string = 'AstroError';
  /** Stable machine-readable code. */
  readonly code: AstroErrorCode;
  /** Whether the operation may succeed if tried again. */
  readonly retryable: boolean;
  /**
   * The deploy record the failed flow had created, on every error a deploy flow raises after
   * creating it: look it up (or finalize it yourself) instead of guessing. Unset otherwise.
   */
  declare readonly deployId?: string;

  constructor(code: AstroErrorCode, message: string, options: AstroErrorOptions = {}) {
    const cause = options.cause === undefined ? undefined : sanitizeCause(options.cause);
    super(redact(message), cause === undefined ? undefined : { cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    Object.defineProperty(this, BRAND, { value: true });
    const kinds: string[] = [];
    for (let ctor = new.target as unknown; ctor && typeof ctor === 'function'; ctor = Object.getPrototypeOf(ctor)) {
      const kind = (ctor as { kind?: string }).kind;
      if (kind && Object.prototype.hasOwnProperty.call(ctor, 'kind')) kinds.push(kind);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds) });
    this.name = (new.target as { kind?: string }).kind ?? 'AstroError';
  }

  /** `instanceof` that also recognises errors created by the other (ESM/CJS) copy of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (!value || typeof value !== 'object') return false;
    const kinds = (value as Record<symbol, unknown>)[KINDS];
    return Array.isArray(kinds) && kinds.includes((this as unknown as { kind: string }).kind);
  }

  /** Plain JSON form (no cause chain), safe to log. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const [k, v] of Object.entries(this)) if (!(k in out)) out[k] = v;
    return out;
  }
}

/**
 * True when `err` is an error from this SDK (from either build), optionally with the given code.
 * With a code it narrows to the class that carries that code (see {@link AstroErrorClassMap}), so
 * its fields type-check: `isAstroError(err, 'ASTRO_ROLLOUT_TIMEOUT') && err.lastState.polls`.
 *
 * @example
 * ```ts
 * try { await client.waitForRollout({ deploymentId, deployId }) }
 * catch (err) { if (isAstroError(err, 'ASTRO_ROLLOUT_TIMEOUT')) console.log(err.lastState.deploymentStatus) }
 * ```
 */
export function isAstroError(err: unknown): err is AstroError;
export function isAstroError<C extends AstroErrorCode>(err: unknown, code: C): err is AstroErrorFor<C>;
export function isAstroError(err: unknown, code?: AstroErrorCode): boolean {
  if (!err || typeof err !== 'object' || (err as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (err as AstroError).code === code;
}

/** Bad options or credentials given to the SDK. Never retryable: fix the input. */
export class AstroConfigError extends AstroError {
  static override readonly kind = 'AstroConfigError';
}

/** One field error from the Astro API error body. */
export interface ApiFieldError {
  code?: string;
  field?: string;
  message?: string;
}

/** Details of a failed HTTP call to the Astro API. */
export interface AstroApiErrorDetails {
  status: number;
  method: string;
  /** Path of the call, without query string. */
  path: string;
  requestId?: string;
  apiMessage?: string;
  fieldErrors?: ApiFieldError[];
  /** Milliseconds the server asked us to wait (from `Retry-After`). */
  retryAfterMs?: number;
}

/** The Astro API answered with a non-success status. */
export class AstroApiError extends AstroError {
  static override readonly kind = 'AstroApiError';
  /** HTTP status code. */
  readonly status: number;
  /** HTTP method of the failed call. */
  readonly method: string;
  /** API path of the failed call (no query string). */
  readonly path: string;
  /** `requestId` from the API error body; quote it to Astronomer support. */
  readonly requestId: string | undefined;
  /** `message` from the API error body. */
  readonly apiMessage: string | undefined;
  /** `fieldErrors` from the API error body. */
  readonly fieldErrors: ApiFieldError[];
  /** Server-requested delay before a retry, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(code: AstroErrorCode, message: string, details: AstroApiErrorDetails, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.status = details.status;
    this.method = details.method;
    this.path = redact(details.path);
    this.requestId = details.requestId;
    this.apiMessage = details.apiMessage === undefined ? undefined : redact(details.apiMessage);
    this.fieldErrors = details.fieldErrors ?? [];
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** A response did not match the schema the SDK relies on (the API changed, or a proxy answered). */
export class AstroSchemaError extends AstroError {
  static override readonly kind = 'AstroSchemaError';
  /** Dotted paths of the fields that failed validation. */
  readonly fields: string[];
  /** API path whose response failed validation. */
  readonly path: string;
  constructor(message: string, path: string, fields: string[], options: AstroErrorOptions = {}) {
    super(ErrorCodes.API_SCHEMA, message, options);
    this.fields = fields;
    this.path = path;
  }
}

/** The connection failed (DNS, refused, reset, TLS) before a response arrived. */
export class AstroConnectionError extends AstroError {
  static override readonly kind = 'AstroConnectionError';
  constructor(message: string, options: AstroErrorOptions = {}) {
    super(ErrorCodes.CONNECTION, message, { retryable: true, ...options });
  }
}

/** A single request (or operation) ran past its time limit. */
export class AstroTimeoutError extends AstroError {
  static override readonly kind = 'AstroTimeoutError';
  /** The limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options: AstroErrorOptions = {}) {
    super(ErrorCodes.TIMEOUT, message, { retryable: true, ...options });
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's `AbortSignal` fired. `cause` is the signal's reason. */
export class AstroAbortError extends AstroError {
  static override readonly kind = 'AstroAbortError';
  constructor(message = 'The operation was aborted by the caller.', options: AstroErrorOptions = {}) {
    super(ErrorCodes.ABORTED, message, options);
  }
}

/** A deploy flow refused to go on (DAG deploys disabled, CI/CD enforcement, ...). */
export class AstroDeployError extends AstroError {
  static override readonly kind: string = 'AstroDeployError';
}

/**
 * A deploy flow sent finalize, its outcome is unknown (the answer was lost or timed out), and the
 * deploy record could not be read back within the flow's bound: the deploy may or may not be
 * finalized. Read it (`client.deploys.get(deploymentId, deployId)`) before deploying again; a
 * record with `dagTarballVersion` (or, for an image, a status other than `INITIALIZED`) shows it was.
 */
export class AstroFinalizeUnknownError extends AstroDeployError {
  static override readonly kind: string = 'AstroFinalizeUnknownError';
  /** The deploy whose finalize is in doubt. */
  override readonly deployId: string;
  /** The deployment it belongs to. */
  readonly deploymentId: string;
  /** The DAG version finalize was sent with, when it carried one. */
  readonly dagTarballVersion: string | undefined;
  /** The image tag of an image deploy. */
  readonly imageTag: string | undefined;
  constructor(
    message: string,
    details: { deploymentId: string; deployId: string; dagTarballVersion?: string; imageTag?: string },
    options: AstroErrorOptions = {},
  ) {
    super(ErrorCodes.FINALIZE_UNKNOWN, message, options);
    this.deploymentId = details.deploymentId;
    this.deployId = details.deployId;
    this.dagTarballVersion = details.dagTarballVersion;
    this.imageTag = details.imageTag;
  }
}

/** One deployment that matched a lookup by name. */
export interface DeploymentMatch {
  id: string;
  name: string;
  workspaceId: string;
  /** The workspace's name, when the API gave it. */
  workspaceName?: string;
}

/**
 * `client.deployments.find` found no deployment with the name (`ASTRO_DEPLOYMENT_NOT_FOUND`) or
 * several (`ASTRO_DEPLOYMENT_AMBIGUOUS`, each in `matches` with its id and workspace).
 */
export class DeploymentLookupError extends AstroError {
  static override readonly kind = 'DeploymentLookupError';
  /** The name looked up. */
  readonly deploymentName: string;
  /** The workspace the lookup was limited to, when it was. */
  readonly workspaceId: string | undefined;
  /** Every deployment with that name (empty for `ASTRO_DEPLOYMENT_NOT_FOUND`). */
  readonly matches: DeploymentMatch[];
  constructor(code: AstroErrorCode, message: string, details: { deploymentName: string; workspaceId?: string; matches: DeploymentMatch[] }, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.deploymentName = details.deploymentName;
    this.workspaceId = details.workspaceId;
    this.matches = details.matches;
  }
}

/**
 * `client.rollback` found nothing to roll back to (`ASTRO_ROLLBACK_NO_TARGET`: no earlier
 * successful deploy, a target that never deployed, is older than the 90 days Astro keeps, or is
 * what runs now) or Astro refused the rollback (`ASTRO_ROLLBACK_REFUSED`, with the API error as
 * `cause` and its `status`).
 */
export class AstroRollbackError extends AstroDeployError {
  static override readonly kind: string = 'AstroRollbackError';
  /** The deployment concerned. */
  readonly deploymentId: string;
  /** The deploy it would roll back to, when one was chosen. */
  readonly targetDeployId: string | undefined;
  /** HTTP status of Astro's refusal (`ASTRO_ROLLBACK_REFUSED`). */
  readonly status: number | undefined;
  constructor(code: AstroErrorCode, message: string, details: { deploymentId: string; targetDeployId?: string; status?: number }, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.deploymentId = details.deploymentId;
    this.targetDeployId = details.targetDeployId;
    this.status = details.status;
  }
}

/** An import error the deployment's Airflow reported for a DAG file. */
export interface DagImportError {
  /** The file, relative to the dags folder (`etl/dag.py`), as shipped. */
  file: string;
  /** The `filename` Airflow reported (absolute on Airflow 2, relative on Airflow 3). */
  filename: string;
  /** Airflow's stack trace (redacted). */
  stackTrace: string;
  /** When Airflow recorded it (ISO 8601), as Airflow reported it. */
  timestamp?: string;
}

/**
 * With `verifyDags: { failOnImportErrors: true }`: Airflow reported import errors in files the
 * deploy shipped (`ASTRO_DAGS_IMPORT_ERRORS`, listed in `importErrors`), or its REST API could not
 * be asked (`ASTRO_DAGS_VERIFY_UNAVAILABLE`, `cause` says why). The deploy itself is live.
 */
export class DagVerificationError extends AstroDeployError {
  static override readonly kind: string = 'DagVerificationError';
  /** The deployment concerned. */
  readonly deploymentId: string;
  /** Import errors in the shipped files (empty for `ASTRO_DAGS_VERIFY_UNAVAILABLE`). */
  readonly importErrors: DagImportError[];
  constructor(code: AstroErrorCode, message: string, details: { deploymentId: string; importErrors: DagImportError[] }, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.deploymentId = details.deploymentId;
    this.importErrors = details.importErrors.map((e) => ({ ...e, stackTrace: redact(e.stackTrace) }));
  }
}

/**
 * `requireClean: true` and the folder that ships (the dags folder, the project) has uncommitted
 * changes, untracked files included (`ASTRO_GIT_UNCOMMITTED_CHANGES`), or git could not tell
 * (`changes` empty, `cause` says why). Nothing was created at Astro. The Astro CLI exits 0 without
 * deploying in this case (astro-cli#1721).
 */
export class GitUncommittedChangesError extends AstroDeployError {
  static override readonly kind: string = 'GitUncommittedChangesError';
  /** The folder that was checked. */
  readonly path: string;
  /** The uncommitted paths, relative to the repository root, sorted. */
  readonly changes: string[];
  constructor(message: string, details: { path: string; changes: string[] }, options: AstroErrorOptions = {}) {
    super(ErrorCodes.GIT_UNCOMMITTED_CHANGES, message, options);
    this.path = details.path;
    this.changes = details.changes;
  }
}

/** A snapshot of what `waitForRollout` last saw. */
export interface RolloutSnapshot {
  /** The deployment's `status` (HEALTHY, DEPLOYING, ...). */
  deploymentStatus?: string;
  /** The deployment's `statusReason`, when it gave one. */
  deploymentStatusReason?: string;
  /** The deploy record's `status` (INITIALIZED, DEPLOYED, FAILED), when a deploy is tracked. */
  deployStatus?: string;
  /** The DAG version the deployment runs. */
  dagTarballVersion?: string;
  /** The DAG version the deployment is moving to. */
  desiredDagTarballVersion?: string;
  /** The image tag the deployment runs. */
  imageTag?: string;
  /** Polls made so far. */
  polls: number;
  /** Time since the wait started, in milliseconds. */
  elapsedMs: number;
}

/** The rollout failed or did not finish in time; `lastState` holds what was last observed. */
export class AstroRolloutError extends AstroError {
  static override readonly kind = 'AstroRolloutError';
  /** The last state observed before giving up. */
  readonly lastState: RolloutSnapshot;
  constructor(code: AstroErrorCode, message: string, lastState: RolloutSnapshot, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.lastState = lastState;
  }
}

/** Turn anything thrown into something safe to attach as `cause`: redacted message, no secrets. */
export function sanitizeCause(cause: unknown, depth = 0): unknown {
  if (depth > 5) return undefined;
  if (isAstroError(cause)) return cause;
  if (cause instanceof Error) {
    const message = redact(cause.message);
    const inner = (cause as { cause?: unknown }).cause;
    const copy = new Error(message, inner === undefined ? undefined : { cause: sanitizeCause(inner, depth + 1) });
    copy.name = cause.name;
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') (copy as Error & { code?: string }).code = code;
    if (cause.stack) copy.stack = redact(cause.stack);
    return copy;
  }
  if (typeof cause === 'string') return redact(cause);
  if (cause === null || typeof cause !== 'object') return cause;
  try {
    return redact(JSON.stringify(cause));
  } catch {
    return '[unserialisable cause]';
  }
}

/** Bundling a dags folder failed (missing folder, escaping symlink, invalid ignore file, ...). */
export class BundleError extends AstroError {
  static override readonly kind = 'BundleError';
  /** The file or folder concerned, relative to the dags folder where possible. */
  readonly path: string | undefined;
  constructor(code: AstroErrorCode, message: string, path?: string, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.path = path;
  }
}

/** An upload (Azure block blob or registry blob) failed after its retries. */
export class UploadError extends AstroError {
  static override readonly kind = 'UploadError';
  /** HTTP status of the last failed request, when there was one. */
  readonly status: number | undefined;
  /** Service error code (`x-ms-error-code` or the registry's `errors[0].code`). */
  readonly serviceCode: string | undefined;
  /** Attempts made for the failing part before giving up. */
  readonly attempts: number | undefined;
  constructor(
    code: AstroErrorCode,
    message: string,
    details: { status?: number; serviceCode?: string; attempts?: number } = {},
    options: AstroErrorOptions = {},
  ) {
    super(code, message, options);
    this.status = details.status;
    this.serviceCode = details.serviceCode;
    this.attempts = details.attempts;
  }
}

/** An image check or push failed. */
export class ImageError extends AstroError {
  static override readonly kind: string = 'ImageError';
  /** The image reference or archive path concerned. */
  readonly reference: string | undefined;
  constructor(code: AstroErrorCode, message: string, reference?: string, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.reference = reference;
  }
}

/**
 * The folder is not an Astro project (`ASTRO_PROJECT_NOT_FOUND`: missing, or no Dockerfile) or one
 * of its files cannot be used as it is (`ASTRO_PROJECT_INVALID`: an invalid `.dockerignore` line,
 * a missing test file). Nothing was built or sent.
 */
export class ProjectError extends AstroError {
  static override readonly kind = 'ProjectError';
  /** The project folder or file concerned. */
  readonly path: string;
  constructor(code: AstroErrorCode, message: string, path: string, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.path = path;
  }
}

/** An image build failed on the daemon (`ASTRO_IMAGE_BUILD_FAILED`): a step failed or the Dockerfile is invalid. */
export class ImageBuildError extends ImageError {
  static override readonly kind: string = 'ImageBuildError';
  /** The failing step as the builder named it (`RUN pip install ...`, `[2/5] RUN ...`), when known. */
  readonly step: string | undefined;
  /** The last lines the build printed (the failing step's output when it is known), at most 50. */
  readonly outputTail: string[];
  /** The builder that ran the build. */
  readonly builder: 'classic' | 'buildkit';
  constructor(
    message: string,
    details: { reference?: string; step?: string; outputTail: string[]; builder: 'classic' | 'buildkit' },
    options: AstroErrorOptions = {},
  ) {
    super(ErrorCodes.IMAGE_BUILD_FAILED, message, details.reference, options);
    this.step = details.step === undefined ? undefined : redact(details.step);
    this.outputTail = details.outputTail.map(redact);
    this.builder = details.builder;
  }
}

/**
 * Tests run in a container of the image failed: the DAG integrity test (`ASTRO_IMAGE_PARSE_FAILED`)
 * or the project's pytest tests (`ASTRO_PROJECT_TESTS_FAILED`). Nothing was deployed.
 */
export class ProjectTestsError extends ImageError {
  static override readonly kind: string = 'ProjectTestsError';
  /** Which suite failed. */
  readonly suite: 'parse' | 'pytest';
  /** The container's exit code. */
  readonly exitCode: number;
  /** What the container printed (stdout and stderr interleaved), at most the last 1 MiB. */
  readonly output: string;
  constructor(
    code: AstroErrorCode,
    message: string,
    details: { reference: string; suite: 'parse' | 'pytest'; exitCode: number; output: string },
    options: AstroErrorOptions = {},
  ) {
    super(code, message, details.reference, options);
    this.suite = details.suite;
    this.exitCode = details.exitCode;
    this.output = redact(details.output);
  }
}

/**
 * The class of the errors that carry each code: what {@link isAstroError} narrows to when given
 * that code. The README's error table lists the same pairs. A code missing here narrows to
 * {@link AstroError}.
 */
export interface AstroErrorClassMap {
  ASTRO_CONFIG_MISSING_TOKEN: AstroConfigError;
  ASTRO_CONFIG_INVALID_TOKEN: AstroConfigError;
  ASTRO_CONFIG_TOKEN_EXPIRED: AstroConfigError;
  ASTRO_CONFIG_MISSING_ORGANIZATION: AstroConfigError;
  ASTRO_CONFIG_INVALID_OPTION: AstroConfigError;
  ASTRO_INSECURE_URL: ImageError;
  ASTRO_API_BAD_REQUEST: AstroApiError;
  ASTRO_API_UNAUTHORIZED: AstroApiError;
  ASTRO_API_FORBIDDEN: AstroApiError;
  ASTRO_API_NOT_FOUND: AstroApiError;
  ASTRO_API_CONFLICT: AstroApiError;
  ASTRO_API_REQUEST_TIMEOUT: AstroApiError;
  ASTRO_API_RATE_LIMITED: AstroApiError;
  ASTRO_API_SERVER_ERROR: AstroApiError;
  ASTRO_API_ERROR: AstroApiError;
  ASTRO_API_SCHEMA: AstroSchemaError;
  ASTRO_CONNECTION: AstroConnectionError;
  ASTRO_TIMEOUT: AstroTimeoutError;
  ASTRO_ABORTED: AstroAbortError;
  ASTRO_DAG_DEPLOY_DISABLED: AstroDeployError;
  ASTRO_DAG_DEPLOY_NOT_APPLIED: AstroDeployError;
  ASTRO_CICD_ENFORCED: AstroDeployError;
  ASTRO_DEPLOY_REFUSED: AstroDeployError;
  ASTRO_ROLLOUT_FAILED: AstroRolloutError;
  ASTRO_ROLLOUT_TIMEOUT: AstroRolloutError;
  ASTRO_FINALIZE_UNKNOWN: AstroFinalizeUnknownError;
  ASTRO_GIT_UNCOMMITTED_CHANGES: GitUncommittedChangesError;
  ASTRO_BUNDLE_DIR_NOT_FOUND: BundleError;
  ASTRO_BUNDLE_EMPTY: BundleError;
  ASTRO_BUNDLE_SYMLINK_ESCAPE: BundleError;
  ASTRO_BUNDLE_SYMLINK_LOOP: BundleError;
  ASTRO_BUNDLE_IGNORE_INVALID: BundleError;
  ASTRO_BUNDLE_HIDDEN_IMPORT: BundleError;
  ASTRO_BUNDLE_IO: BundleError;
  ASTRO_BUNDLE_DIR_REACHED_TWICE: BundleError;
  ASTRO_BUNDLE_OUTPUT_INSIDE_DAGS: BundleError;
  ASTRO_BUNDLE_FILE_CHANGED: BundleError;
  ASTRO_BUNDLE_INVALID_FILENAME: BundleError;
  ASTRO_BUNDLE_SYNTAX_MISMATCH: BundleError;
  ASTRO_UPLOAD_FAILED: UploadError;
  ASTRO_UPLOAD_REJECTED: UploadError;
  ASTRO_UPLOAD_SAS_EXPIRED: UploadError;
  ASTRO_UPLOAD_NO_VERSION_ID: UploadError;
  ASTRO_UPLOAD_SOURCE_CHANGED: UploadError;
  ASTRO_UPLOAD_INVALID_URL: UploadError;
  ASTRO_UPLOAD_SOURCE_UNREADABLE: UploadError;
  ASTRO_UPLOAD_TOO_LARGE: UploadError;
  ASTRO_UPLOAD_CONFLICT: UploadError;
  ASTRO_IMAGE_DOCKER_UNAVAILABLE: ImageError;
  ASTRO_IMAGE_DOCKERODE_MISSING: ImageError;
  ASTRO_IMAGE_NOT_FOUND: ImageError;
  ASTRO_IMAGE_PLATFORM_MISMATCH: ImageError;
  ASTRO_IMAGE_NOT_RUNTIME: ImageError;
  ASTRO_IMAGE_RUNTIME_DOWNGRADE: ImageError;
  ASTRO_IMAGE_RUNTIME_UNSUPPORTED: ImageError;
  ASTRO_IMAGE_AIRFLOW3_UPGRADE_BLOCKED: ImageError;
  ASTRO_IMAGE_INVALID_ARCHIVE: ImageError;
  ASTRO_IMAGE_PUSH_FAILED: ImageError;
  ASTRO_IMAGE_REGISTRY_AUTH: ImageError;
  ASTRO_IMAGE_PARSE_FAILED: ProjectTestsError;
  ASTRO_IMAGE_REGISTRY_UNAVAILABLE: ImageError;
  ASTRO_IMAGE_PARSE_CHECK_ERROR: ImageError;
  ASTRO_IMAGE_BUILD_FAILED: ImageBuildError;
  ASTRO_IMAGE_BUILDKIT_UNAVAILABLE: ImageError;
  ASTRO_PROJECT_NOT_FOUND: ProjectError;
  ASTRO_PROJECT_INVALID: ProjectError;
  ASTRO_PROJECT_TESTS_FAILED: ProjectTestsError;
  ASTRO_DEPLOYMENT_NOT_FOUND: DeploymentLookupError;
  ASTRO_DEPLOYMENT_AMBIGUOUS: DeploymentLookupError;
  ASTRO_ROLLBACK_NO_TARGET: AstroRollbackError;
  ASTRO_ROLLBACK_REFUSED: AstroRollbackError;
  ASTRO_DAGS_IMPORT_ERRORS: DagVerificationError;
  ASTRO_DAGS_VERIFY_UNAVAILABLE: DagVerificationError;
}

/** The error {@link isAstroError} narrows to for code `C`: the class of {@link AstroErrorClassMap}, with `code` narrowed to `C`. */
export type AstroErrorFor<C extends AstroErrorCode> = C extends keyof AstroErrorClassMap
  ? AstroErrorClassMap[C] & { readonly code: C }
  : AstroError & { readonly code: C };
