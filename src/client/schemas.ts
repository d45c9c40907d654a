/**
 * zod schemas for the Astro API v1 responses the SDK reads.
 *
 * Objects are "loose": fields we do not know pass through untouched, so a new API field never
 * breaks a deploy. Fields the deploy flows rely on are checked, so a changed or missing one
 * surfaces as an `ASTRO_API_SCHEMA` error naming the field instead of a confusing failure later.
 * Optional fields accept `null` (Go clients and some proxies emit it) and read as `undefined`.
 */
import { z } from 'zod';

const optionalString = z
  .string()
  .nullish()
  .transform((v) => v ?? undefined);
const optionalBoolean = z
  .boolean()
  .nullish()
  .transform((v) => v ?? undefined);
const optionalNumber = z
  .number()
  .nullish()
  .transform((v) => v ?? undefined);

/**
 * Deployment types (`type` field): `STANDARD`, `DEDICATED`, `HYBRID` today. The field is optional
 * in the v1 spec and new values may come, so a deployment's `type` is read as any string or
 * `undefined`; only building an update body needs a known one.
 */
export type DeploymentType = 'STANDARD' | 'DEDICATED' | 'HYBRID';
/** Deployment health statuses. Unknown future values are passed through as strings. */
export type DeploymentStatus = 'CREATING' | 'DEPLOYING' | 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN' | 'HIBERNATING' | (string & {});
/** Deploy record statuses. */
export type DeployStatus = 'INITIALIZED' | 'DEPLOYED' | 'FAILED' | (string & {});
/** Deploy types accepted by create-deploy. */
export type DeployType = 'IMAGE_AND_DAG' | 'IMAGE_ONLY' | 'DAG_ONLY' | 'BUNDLE';

export const environmentVariableSchema = z.looseObject({
  key: z.string(),
  value: optionalString,
  isSecret: z.boolean(),
  updatedAt: optionalString,
});

export const workerQueueSchema = z.looseObject({
  id: optionalString,
  name: z.string(),
  isDefault: z.boolean(),
  maxWorkerCount: optionalNumber,
  minWorkerCount: optionalNumber,
  workerConcurrency: optionalNumber,
  astroMachine: optionalString,
  nodePoolId: optionalString,
  podCpu: optionalString,
  podMemory: optionalString,
  podEphemeralStorage: optionalString,
});

export const deploymentSchema = z.looseObject({
  /** The deployment's ID: the `deploymentId` every flow takes. */
  id: z.string(),
  /** The deployment's name, as Astro's UI shows it. */
  name: z.string(),
  /** The organization the deployment belongs to. */
  organizationId: z.string(),
  /** The workspace the deployment belongs to. */
  workspaceId: z.string(),
  /** Optional in the spec; a {@link DeploymentType} or a value this SDK does not know yet. */
  type: z
    .string()
    .nullish()
    .transform((v): DeploymentType | (string & {}) | undefined => v ?? undefined),
  /**
   * Health, a {@link DeploymentStatus}: `waitForRollout` ends on `HEALTHY` (or `HIBERNATING`)
   * once the deployment runs the deploy it waits for.
   */
  status: z.string(),
  /** Why the deployment has its `status`, when the API says (reported in rollout errors). */
  statusReason: optionalString,
  /**
   * DAG-only deploys are on: `deployDags` needs them (`ASTRO_DAG_DEPLOY_DISABLED` otherwise), and
   * image deploys then ship `dags/` as a bundle instead of baking it into the image.
   */
  isDagDeployEnabled: z.boolean(),
  /**
   * Deploys must come from an API token: the flows refuse a user token (`ASTRO_CICD_ENFORCED`),
   * and so does `setDagDeploy` unless forced.
   */
  isCicdEnforced: z.boolean(),
  /** The deployment's namespace: `deployProject` names its local image `<namespace>/airflow:latest`, as the CLI does. */
  namespace: optionalString,
  /**
   * The Astro Runtime version the deployment runs (`3.1-2`), read when `astroRuntimeVersion` is
   * absent: an image deploy's runtime may not be lower, and it picks the `.airflowignore` syntax.
   */
  runtimeVersion: optionalString,
  /** The Astro Runtime version, preferred over `runtimeVersion` when both are given. */
  astroRuntimeVersion: optionalString,
  /** The Airflow version the runtime carries. */
  airflowVersion: optionalString,
  /** The DAG bundle version the deployment runs: `waitForRollout` compares it with the finalized one. */
  dagTarballVersion: optionalString,
  /** The DAG bundle version the deployment is moving to; equal to `dagTarballVersion` once rolled out. */
  desiredDagTarballVersion: optionalString,
  /** The image tag the deployment runs: `waitForRollout` compares it with the pushed one. */
  imageTag: optionalString,
  /** The registry repository of the deployment's images. */
  imageRepository: optionalString,
  imageVersion: optionalString,
  webServerUrl: optionalString,
  /**
   * The deployment's own Airflow REST API, e.g. `org.astronomer.run/d1234/api/v2` (Astro gives it
   * without a scheme; `https://` is meant): what `wait.verifyDags` asks for import errors.
   */
  webServerAirflowApiUrl: optionalString,
  workspaceName: optionalString,
  /** `CELERY`, `KUBERNETES` or `ASTRO`: part of the full update body `setDagDeploy` sends back. */
  executor: optionalString,
  schedulerSize: optionalString,
  isHighAvailability: optionalBoolean,
  isDevelopmentMode: optionalBoolean,
  /** Environment variables; secret ones come without a value and are sent back without one by `setDagDeploy`, which keeps them. */
  environmentVariables: z
    .array(environmentVariableSchema)
    .nullish()
    .transform((v) => v ?? undefined),
  /** Worker queues, sent back as they are by `setDagDeploy`. */
  workerQueues: z
    .array(workerQueueSchema)
    .nullish()
    .transform((v) => v ?? undefined),
  description: optionalString,
  contactEmails: z
    .array(z.string())
    .nullish()
    .transform((v) => v ?? undefined),
  clusterId: optionalString,
  schedulerAu: optionalNumber,
  schedulerReplicas: optionalNumber,
  taskPodNodePoolId: optionalString,
  defaultTaskPodCpu: optionalString,
  defaultTaskPodMemory: optionalString,
  resourceQuotaCpu: optionalString,
  resourceQuotaMemory: optionalString,
  /** Remote Execution: when enabled, DAGs never ship in a bundle or an image deploy's DAG upload. */
  remoteExecution: z
    .looseObject({
      enabled: z.boolean(),
      allowedIpAddressRanges: z
        .array(z.string())
        .nullish()
        .transform((v) => v ?? undefined),
      taskLogBucket: optionalString,
      taskLogUrlPattern: optionalString,
    })
    .nullish()
    .transform((v) => v ?? undefined),
  scalingSpec: z
    .looseObject({
      hibernationSpec: z
        .looseObject({
          override: z
            .looseObject({ isActive: optionalBoolean, isHibernating: optionalBoolean, overrideUntil: optionalString })
            .nullish()
            .transform((v) => v ?? undefined),
          schedules: z
            .array(
              z.looseObject({
                hibernateAtCron: z.string(),
                wakeAtCron: z.string(),
                isEnabled: z.boolean(),
                description: optionalString,
              }),
            )
            .nullish()
            .transform((v) => v ?? undefined),
        })
        .nullish()
        .transform((v) => v ?? undefined),
    })
    .nullish()
    .transform((v) => v ?? undefined),
  createdAt: optionalString,
  updatedAt: optionalString,
});

/**
 * A deployment as returned by `GET /organizations/{org}/deployments/{id}`, checked by
 * {@link deploymentSchema}: the documented fields are the ones the SDK relies on; fields it does not
 * know pass through unchecked.
 */
// An interface, not a type alias, so that signatures and the docs show it by name.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Deployment extends z.infer<typeof deploymentSchema> {}

export const deploymentListSchema = z.looseObject({
  deployments: z.array(deploymentSchema),
  totalCount: optionalNumber,
  limit: optionalNumber,
  offset: optionalNumber,
});

/** A page of deployments. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface DeploymentList extends z.infer<typeof deploymentListSchema> {}

export const deploySchema = z.looseObject({
  /** The deploy's ID: what `deployId` in results and errors names. */
  id: z.string(),
  /** The deployment it belongs to. */
  deploymentId: z.string(),
  /** The {@link DeployType} it was created with. */
  type: z.string(),
  /** A {@link DeployStatus}: `INITIALIZED` until finalized, then `DEPLOYED` (or `FAILED`) once it rolled out. */
  status: optionalString,
  /** Where an image deploy pushes (`imageRepository:imageTag`). */
  imageRepository: z.string(),
  /** Marked required but documented as "appears only if specified": read as `''` when absent. */
  imageTag: z
    .string()
    .nullish()
    .transform((v) => v ?? ''),
  isDagDeployEnabled: optionalBoolean,
  /** The Azure block-blob SAS URL a DAG bundle is uploaded to; redacted in what the SDK returns. */
  dagsUploadUrl: optionalString,
  bundleUploadUrl: optionalString,
  /** The bundle version finalize was given (the blob's `x-ms-version-id`). */
  dagTarballVersion: optionalString,
  description: optionalString,
  /** Set on a deploy made by a rollback. */
  rollbackFromId: optionalString,
  createdAt: optionalString,
  updatedAt: optionalString,
});

/** A deploy record (create, finalize, get, rollback), checked by {@link deploySchema}. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Deploy extends z.infer<typeof deploySchema> {}

export const deployListSchema = z.looseObject({
  deploys: z.array(deploySchema),
  totalCount: optionalNumber,
  limit: optionalNumber,
  offset: optionalNumber,
});

/** A page of deploys. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface DeployList extends z.infer<typeof deployListSchema> {}

export const deploymentOptionsSchema = z.looseObject({
  runtimeReleases: z.array(
    z.looseObject({
      version: z.string(),
      airflowVersion: optionalString,
      channel: optionalString,
      releaseDate: optionalString,
    }),
  ),
});

/** `GET /organizations/{org}/deployment-options`: the runtime releases an image deploy's runtime must be among. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface DeploymentOptions extends z.infer<typeof deploymentOptionsSchema> {}

/** The API's error body. Parsed leniently: any part may be missing. */
export const apiErrorBodySchema = z.looseObject({
  message: optionalString,
  requestId: optionalString,
  statusCode: optionalNumber,
  fieldErrors: z
    .array(z.looseObject({ code: optionalString, field: optionalString, message: optionalString }))
    .nullish()
    .transform((v) => v ?? undefined),
});
