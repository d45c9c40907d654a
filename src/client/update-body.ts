/**
 * Rebuild the full update body of a deployment from its current state.
 *
 * The update endpoint replaces the deployment's configuration with the body, so every setting must
 * be sent back. This follows the Astro CLI's `deployment update` (v1 API), with three deliberate
 * differences that keep settings the CLI can lose:
 * - secret environment variables are sent as `{ key, isSecret: true }` with no `value` (GET never
 *   returns secret values; omitting the value keeps the stored one, while an empty string would
 *   overwrite it);
 * - `contactEmails` are sent back when present, and so are a development-mode deployment's
 *   hibernation schedules (`scalingSpec`); like the CLI, no `scalingSpec` is sent for any other
 *   deployment, since the API rejects a hibernation spec there (astro-cli#1578);
 * - hosted worker queues keep their `podEphemeralStorage`;
 * - a missing optional field is left out instead of being dereferenced (the CLI crashes on some).
 *
 * Fields the update requires but the GET marks optional (`type`, `executor`, `schedulerSize`,
 * `isHighAvailability`, `defaultTaskPodCpu`/`defaultTaskPodMemory` without Remote Execution,
 * Hybrid `schedulerAu`) are never guessed: a default could silently change the deployment (a
 * smaller scheduler, high availability off). When one is missing, or `type` is a value this SDK
 * does not know, {@link buildUpdateBody} throws `ASTRO_API_SCHEMA` naming the field, before any
 * update is sent.
 */
import { AstroSchemaError } from '../core/errors.js';
import type { Deployment } from './schemas.js';

type WorkerQueue = NonNullable<Deployment['workerQueues']>[number];

/** The settings setDagDeploy (and future callers) change. */
export interface DeploymentChanges {
  isDagDeployEnabled?: boolean;
}

function defined<T extends Record<string, unknown>>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function environmentVariables(d: Deployment): Array<Record<string, unknown>> {
  return (d.environmentVariables ?? []).map((v) =>
    v.isSecret ? { key: v.key, isSecret: true } : { key: v.key, isSecret: false, value: v.value ?? '' },
  );
}

function usesWorkerQueues(d: Deployment): boolean {
  return (d.executor === 'CELERY' || d.executor === 'ASTRO') && !d.remoteExecution?.enabled;
}

/** The fields a worker queue has in both the hosted and the hybrid update request. */
function queueFields(q: WorkerQueue): Record<string, unknown> {
  return {
    id: q.id,
    name: q.name,
    isDefault: q.isDefault,
    maxWorkerCount: q.maxWorkerCount,
    minWorkerCount: q.minWorkerCount,
    workerConcurrency: q.workerConcurrency,
  };
}

function hostedQueues(d: Deployment): Array<Record<string, unknown>> | undefined {
  if (!usesWorkerQueues(d) || !d.workerQueues) return undefined;
  return d.workerQueues.map((q) => defined({ ...queueFields(q), astroMachine: q.astroMachine, podEphemeralStorage: q.podEphemeralStorage }));
}

function hybridQueues(d: Deployment): Array<Record<string, unknown>> | undefined {
  if (d.executor !== 'CELERY' || !d.workerQueues) return undefined;
  return d.workerQueues.map((q) => defined({ ...queueFields(q), nodePoolId: q.nodePoolId ?? '' }));
}

function scalingSpec(d: Deployment): Record<string, unknown> | undefined {
  // Hibernation is for development-mode deployments only; the API rejects it elsewhere.
  if (d.isDevelopmentMode !== true) return undefined;
  const spec = d.scalingSpec?.hibernationSpec;
  if (!spec) return undefined;
  const hibernationSpec = defined({
    schedules: spec.schedules?.map((s) => defined({ hibernateAtCron: s.hibernateAtCron, wakeAtCron: s.wakeAtCron, isEnabled: s.isEnabled, description: s.description })),
    // Only an active override is state worth keeping; an expired one must not be revived.
    override: spec.override?.isActive ? defined({ isHibernating: spec.override.isHibernating, overrideUntil: spec.override.overrideUntil }) : undefined,
  });
  return Object.keys(hibernationSpec).length ? { hibernationSpec } : undefined;
}

const KNOWN_TYPES = new Set(['STANDARD', 'DEDICATED', 'HYBRID']);

/** Throw `ASTRO_API_SCHEMA` naming `field` when the deployment lacks a value the update must carry. */
function required<T>(d: Deployment, field: string, value: T | undefined, why = 'the update body must carry it'): T {
  if (value !== undefined && value !== null && value !== '') return value;
  throw new AstroSchemaError(
    `Deployment ${d.id} as read from the Astro API has no ${field}, and ${why}. The SDK does not guess it (a default could change the deployment); change the setting in the Astro UI or with the Astro CLI, or report the response.`,
    `/organizations/${d.organizationId}/deployments/${d.id}`,
    [field],
  );
}

/**
 * The body for `POST /organizations/{org}/deployments/{id}` with `changes` applied. Throws
 * {@link AstroSchemaError} (`ASTRO_API_SCHEMA`, `fields` naming the field) when the deployment
 * lacks a field the update requires (see the module notes).
 */
export function buildUpdateBody(d: Deployment, changes: DeploymentChanges): Record<string, unknown> {
  const type = required(d, 'type', d.type);
  if (!KNOWN_TYPES.has(type)) {
    required(d, 'type', undefined, `its type "${type}" is not one this SDK can build an update body for (STANDARD, DEDICATED, HYBRID)`);
  }
  const common = {
    type,
    name: d.name,
    workspaceId: d.workspaceId,
    executor: required(d, 'executor', d.executor),
    description: d.description ?? '',
    contactEmails: d.contactEmails,
    isCicdEnforced: d.isCicdEnforced,
    isDagDeployEnabled: changes.isDagDeployEnabled ?? d.isDagDeployEnabled,
    environmentVariables: environmentVariables(d),
  };
  if (type === 'HYBRID') {
    return defined({
      ...common,
      scheduler: { au: required(d, 'schedulerAu', d.schedulerAu), replicas: required(d, 'schedulerReplicas', d.schedulerReplicas) },
      taskPodNodePoolId: d.executor === 'KUBERNETES' ? d.taskPodNodePoolId : undefined,
      workerQueues: hybridQueues(d),
    });
  }
  const remote = d.remoteExecution?.enabled
    ? defined({
        enabled: true,
        allowedIpAddressRanges: d.remoteExecution.allowedIpAddressRanges,
        taskLogBucket: d.remoteExecution.taskLogBucket,
        taskLogUrlPattern: d.remoteExecution.taskLogUrlPattern,
      })
    : undefined;
  const podDefaultsRequired = !d.remoteExecution?.enabled;
  const why = 'the update body must carry it when Remote Execution is off';
  return defined({
    ...common,
    schedulerSize: required(d, 'schedulerSize', d.schedulerSize),
    isHighAvailability: required(d, 'isHighAvailability', d.isHighAvailability),
    isDevelopmentMode: d.isDevelopmentMode,
    defaultTaskPodCpu: podDefaultsRequired ? required(d, 'defaultTaskPodCpu', d.defaultTaskPodCpu, why) : d.defaultTaskPodCpu,
    defaultTaskPodMemory: podDefaultsRequired ? required(d, 'defaultTaskPodMemory', d.defaultTaskPodMemory, why) : d.defaultTaskPodMemory,
    resourceQuotaCpu: d.resourceQuotaCpu,
    resourceQuotaMemory: d.resourceQuotaMemory,
    workerQueues: hostedQueues(d),
    remoteExecution: remote,
    scalingSpec: scalingSpec(d),
  });
}
