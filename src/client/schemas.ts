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
  id: z.string(),
  name: z.string(),
  organizationId: z.string(),
  workspaceId: z.string(),
  /** Optional in the spec; a {@link DeploymentType} or a value this SDK does not know yet. */
  type: z
    .string()
    .nullish()
    .transform((v): DeploymentType | (string & {}) | undefined => v ?? undefined),
  status: z.string(),
  statusReason: optionalString,
  isDagDeployEnabled: z.boolean(),
  isCicdEnforced: z.boolean(),
  namespace: optionalString,
  runtimeVersion: optionalString,
  astroRuntimeVersion: optionalString,
  airflowVersion: optionalString,
  dagTarballVersion: optionalString,
  desiredDagTarballVersion: optionalString,
  imageTag: optionalString,
  imageRepository: optionalString,
  imageVersion: optionalString,
  webServerUrl: optionalString,
  /**
   * The deployment's own Airflow REST API, e.g. `org.astronomer.run/d1234/api/v2` (Astro gives it
   * without a scheme; `https://` is meant): what `wait.verifyDags` asks for import errors.
   */
  webServerAirflowApiUrl: optionalString,
  workspaceName: optionalString,
  executor: optionalString,
  schedulerSize: optionalString,
  isHighAvailability: optionalBoolean,
  isDevelopmentMode: optionalBoolean,
  environmentVariables: z
    .array(environmentVariableSchema)
    .nullish()
    .transform((v) => v ?? undefined),
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

/** A deployment as returned by `GET /organizations/{org}/deployments/{id}`. */
export type Deployment = z.infer<typeof deploymentSchema>;

export const deploymentListSchema = z.looseObject({
  deployments: z.array(deploymentSchema),
  totalCount: optionalNumber,
  limit: optionalNumber,
  offset: optionalNumber,
});

/** A page of deployments. */
export type DeploymentList = z.infer<typeof deploymentListSchema>;

export const deploySchema = z.looseObject({
  id: z.string(),
  deploymentId: z.string(),
  type: z.string(),
  status: optionalString,
  imageRepository: z.string(),
  /** Marked required but documented as "appears only if specified": read as `''` when absent. */
  imageTag: z
    .string()
    .nullish()
    .transform((v) => v ?? ''),
  isDagDeployEnabled: optionalBoolean,
  dagsUploadUrl: optionalString,
  bundleUploadUrl: optionalString,
  dagTarballVersion: optionalString,
  description: optionalString,
  /** Set on a deploy made by a rollback. */
  rollbackFromId: optionalString,
  createdAt: optionalString,
  updatedAt: optionalString,
});

/** A deploy record (create, finalize, get, rollback). */
export type Deploy = z.infer<typeof deploySchema>;

export const deployListSchema = z.looseObject({
  deploys: z.array(deploySchema),
  totalCount: optionalNumber,
  limit: optionalNumber,
  offset: optionalNumber,
});

/** A page of deploys. */
export type DeployList = z.infer<typeof deployListSchema>;

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

/** `GET /organizations/{org}/deployment-options`. */
export type DeploymentOptions = z.infer<typeof deploymentOptionsSchema>;

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
