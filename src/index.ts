/**
 * astro-deploy-sdk: typed, resumable deploys of Apache Airflow DAGs and images to Astronomer Astro.
 *
 * The main entry exports the client, its option and result types, and the error family. The
 * building blocks are also published on their own subpaths: `astro-deploy-sdk/bundle`,
 * `astro-deploy-sdk/upload`, `astro-deploy-sdk/image` and `astro-deploy-sdk/testing`.
 *
 * @packageDocumentation
 */
export { AstroClient } from './client/client.js';
export { DEFAULT_BASE_URL, type ClientOptions } from './client/options.js';
export type { RequestOptions, RetryMode } from './client/transport.js';
export type { RetryInfo, RetryOptions } from './core/retry.js';
export type { ResolvedClientOptions } from './client/options.js';
export type { DeployBundleOptions } from './client/deploy-common.js';
export {
  deploySchema,
  deployListSchema,
  deploymentSchema,
  deploymentListSchema,
  deploymentOptionsSchema,
  environmentVariableSchema,
  workerQueueSchema,
  apiErrorBodySchema,
} from './client/schemas.js';
// Types only: resources are reached through a client (`client.deployments`, ...), never built by callers.
export type {
  DeploymentsResource,
  DeploysResource,
  DeploymentOptionsResource,
  ApiHandle,
  CreateDeployParams,
  FinalizeDeployParams,
  DeployGitMetadata,
  PageParams,
} from './client/resources.js';
export type {
  Deploy,
  DeployList,
  DeployStatus,
  DeployType,
  Deployment,
  DeploymentList,
  DeploymentOptions,
  DeploymentStatus,
  DeploymentType,
} from './client/schemas.js';
export type { RolloutExpectation, RolloutResult, WaitForRolloutParams } from './client/rollout.js';
export type { SetDagDeployOptions, SetDagDeployResult } from './client/dag-deploy.js';
export type {
  DeployDagsParams,
  DeployDagsResult,
  DeployDagsEvent,
  DeployDagsBundleOptions,
  DeployPhaseEvent,
} from './client/deploy-dags.js';
export type { DeployImageParams, DeployImageResult, DeployImageEvent } from './client/deploy-image.js';
export type {
  DeployManyOutcome,
  DeployDagsToManyParams,
  DeployDagsToManyValue,
  DeployImageToManyParams,
  DeployImageToManyValue,
} from './client/deploy-many.js';
export type { DeployProjectParams, DeployProjectResult, DeployProjectEvent, DeployProjectTimings } from './client/deploy-project.js';
export type { DeployDagsOutcome } from './client/deploy-dags.js';
export type { DeployImageOutcome } from './client/deploy-image.js';
export type { DeployProjectOutcome } from './client/deploy-project.js';
export type { DeployDryRun, DeployPlan, DeployRefusal, PlannedBundle, PlannedImage, PlannedTests } from './client/dry-run.js';
export type { DeploySkipped, DeployPlanningOptions, UnchangedCheck, RunningCode, CodeIdentity } from './client/skip-unchanged.js';
export type { DeployImpact, DeployImpactEvent } from './client/impact.js';
export type { RollbackParams, RollbackResult } from './client/rollback.js';
export type { DagVerification, VerifyDagsOptions } from './client/verify-dags.js';
export type { FindDeploymentParams } from './client/find-deployment.js';
export { buildUpdateBody, type DeploymentChanges } from './client/update-body.js';
export { readGitMetadata, uncommittedChanges, type GitOptions, type GitMetadataResult, type GitSkipReason, type DeployGitEvent } from './client/git.js';
export { readTokenClaims, type AstroTokenClaims } from './client/token.js';
export type * from './client/events.js';
export {
  AstroError,
  AstroConfigError,
  AstroApiError,
  AstroSchemaError,
  AstroConnectionError,
  AstroTimeoutError,
  AstroAbortError,
  AstroDeployError,
  AstroRolloutError,
  AstroFinalizeUnknownError,
  GitUncommittedChangesError,
  AstroRollbackError,
  DeploymentLookupError,
  DagVerificationError,
  BundleError,
  UploadError,
  ImageError,
  ImageBuildError,
  ProjectError,
  ProjectTestsError,
  ErrorCodes,
  isAstroError,
  type AstroErrorCode,
  type AstroErrorClassMap,
  type AstroErrorFor,
  type AstroErrorOptions,
  type AstroApiErrorDetails,
  type ApiFieldError,
  type RolloutSnapshot,
  type DeploymentMatch,
  type DagImportError,
} from './core/errors.js';
export { redact, registerSecret } from './core/redact.js';
export type { Logger, LogLevel } from './core/logger.js';
export type { DispatcherLike } from './core/dispatcher.js';
export type { DockerLike } from './image/docker-like.js';
export { SDK_VERSION } from './version.js';
