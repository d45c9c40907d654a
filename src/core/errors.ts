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
export * from './error-codes.js';
export * from './error-base.js';
export * from './flow-errors.js';
import type { AstroApiError, AstroConfigError, AstroError, AstroSchemaError, AstroConnectionError, AstroTimeoutError, AstroAbortError } from './error-base.js';
import type { AstroDeployError, AstroFinalizeUnknownError, DeploymentLookupError, AstroRollbackError, DagVerificationError, GitUncommittedChangesError, AstroRolloutError, BundleError, UploadError, ImageError, ProjectError, ImageBuildError, ProjectTestsError } from './flow-errors.js';
import type { AstroErrorCode } from './error-codes.js';

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
  ASTRO_DAG_DEPLOY_UNKNOWN: AstroDeployError;
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
  ASTRO_ROLLBACK_UNKNOWN: AstroRollbackError;
  ASTRO_DAGS_IMPORT_ERRORS: DagVerificationError;
  ASTRO_DAGS_VERIFY_UNAVAILABLE: DagVerificationError;
}

/** The error {@link isAstroError} narrows to for code `C`: the class of {@link AstroErrorClassMap}, with `code` narrowed to `C`. */
export type AstroErrorFor<C extends AstroErrorCode> = C extends keyof AstroErrorClassMap
  ? AstroErrorClassMap[C] & { readonly code: C }
  : AstroError & { readonly code: C };
