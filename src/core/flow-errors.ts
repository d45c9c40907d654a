/**
 * The errors of the deploy flows and the modules they compose: deploys, lookups, rollbacks, DAG
 * verification, rollouts, bundles, uploads, images and projects. The barrel is errors.ts.
 */
import { AstroError, type AstroErrorOptions } from './error-base.js';
import { ErrorCodes, type AstroErrorCode } from './error-codes.js';
import { redact } from './redact.js';

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
 * what runs now), Astro refused the rollback (`ASTRO_ROLLBACK_REFUSED`, with the API error as
 * `cause` and its `status`), or its answer was lost and the deploy list showed no record of it
 * within the bound (`ASTRO_ROLLBACK_UNKNOWN`: it may still be made; it was not sent again).
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
