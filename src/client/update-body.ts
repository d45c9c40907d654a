/**
 * Rebuild the full update body of a deployment from its current state.
 *
 * The update endpoint replaces the deployment's configuration with the body, so every setting must
 * be sent back. This follows the Astro CLI's `deployment update` (v1 API), with three deliberate
 * differences that keep settings the CLI can lose:
 * - secret environment variables are sent as `{ key, isSecret: true }` with no `value` (GET never
 *   returns secret values; omitting the value keeps the stored one, while an empty string would
 *   overwrite it);
 * - `contactEmails` and hibernation schedules (`scalingSpec`) are sent back when present;
 * - a missing field is left out instead of being dereferenced (the CLI crashes on some).
 */
import type { Deployment } from './schemas.js';

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

function hostedQueues(d: Deployment): Array<Record<string, unknown>> | undefined {
  if (!usesWorkerQueues(d) || !d.workerQueues) return undefined;
  return d.workerQueues.map((q) =>
    defined({
      id: q.id,
      name: q.name,
      isDefault: q.isDefault,
      maxWorkerCount: q.maxWorkerCount,
      minWorkerCount: q.minWorkerCount,
      workerConcurrency: q.workerConcurrency,
      astroMachine: q.astroMachine,
    }),
  );
}

function hybridQueues(d: Deployment): Array<Record<string, unknown>> | undefined {
  if (d.executor !== 'CELERY' || !d.workerQueues) return undefined;
  return d.workerQueues.map((q) =>
    defined({
      id: q.id,
      name: q.name,
      isDefault: q.isDefault,
      maxWorkerCount: q.maxWorkerCount,
      minWorkerCount: q.minWorkerCount,
      workerConcurrency: q.workerConcurrency,
      nodePoolId: q.nodePoolId ?? '',
    }),
  );
}

function scalingSpec(d: Deployment): Record<string, unknown> | undefined {
  const spec = d.scalingSpec?.hibernationSpec;
  if (!spec) return undefined;
  const hibernationSpec = defined({
    schedules: spec.schedules?.map((s) => defined({ hibernateAtCron: s.hibernateAtCron, wakeAtCron: s.wakeAtCron, isEnabled: s.isEnabled, description: s.description })),
    // Only an active override is state worth keeping; an expired one must not be revived.
    override: spec.override?.isActive ? defined({ isHibernating: spec.override.isHibernating, overrideUntil: spec.override.overrideUntil }) : undefined,
  });
  return Object.keys(hibernationSpec).length ? { hibernationSpec } : undefined;
}

/** The body for `POST /organizations/{org}/deployments/{id}` with `changes` applied. */
export function buildUpdateBody(d: Deployment, changes: DeploymentChanges): Record<string, unknown> {
  const common = {
    type: d.type,
    name: d.name,
    workspaceId: d.workspaceId,
    executor: d.executor,
    description: d.description ?? '',
    contactEmails: d.contactEmails,
    isCicdEnforced: d.isCicdEnforced,
    isDagDeployEnabled: changes.isDagDeployEnabled ?? d.isDagDeployEnabled,
    environmentVariables: environmentVariables(d),
  };
  if (d.type === 'HYBRID') {
    return defined({
      ...common,
      scheduler: d.schedulerAu !== undefined || d.schedulerReplicas !== undefined ? defined({ au: d.schedulerAu, replicas: d.schedulerReplicas }) : undefined,
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
  return defined({
    ...common,
    schedulerSize: d.schedulerSize,
    isHighAvailability: d.isHighAvailability,
    isDevelopmentMode: d.isDevelopmentMode,
    defaultTaskPodCpu: d.defaultTaskPodCpu,
    defaultTaskPodMemory: d.defaultTaskPodMemory,
    resourceQuotaCpu: d.resourceQuotaCpu,
    resourceQuotaMemory: d.resourceQuotaMemory,
    workerQueues: hostedQueues(d),
    remoteExecution: remote,
    scalingSpec: scalingSpec(d),
  });
}
