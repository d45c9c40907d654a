/**
 * The fake's handling of `POST /organizations/{org}/deployments/{id}` (update deployment).
 *
 * The real endpoint replaces the configuration with the body, so the fake validates the body the
 * way the v1 schema does (required fields per deployment type, the `default` worker queue) and
 * then applies it wholesale. Secret environment variables sent without a `value` keep their stored
 * value; that is the behaviour the SDK relies on, and an SDK that sent an empty value or dropped
 * the variable would wipe the secret here as in production.
 *
 * From the spec and the CLI (astro-v1-contract): the required fields of each `Update*Request`;
 * `scalingSpec` (hibernation) refused unless the deployment is in development mode
 * (astro-cli#1578); `workloadIdentity` omitted keeps the stored value.
 *
 * Guesses (the API's behaviour is not documented; an SDK must not depend on them):
 * - omitted optional settings are cleared: `contactEmails`, `description`, `scalingSpec`, and a
 *   queue's `podEphemeralStorage`;
 * - omitted `workerQueues` keep the current queues (the server keeps a default queue);
 * - `resourceQuotaCpu` / `resourceQuotaMemory` are required, like `defaultTaskPodCpu` /
 *   `defaultTaskPodMemory`, when Remote Execution is off, and Hybrid `taskPodNodePoolId` with
 *   the KUBERNETES executor;
 * - new queues get an id, and `podCpu` / `podMemory` of the queue they replace (or 1 / 2Gi).
 */
import type { FakeDeployment, FakeEnvVar } from './fake-state.js';

/** A validation problem, in the API's `fieldErrors` shape. */
export interface FieldProblem {
  code: string;
  field: string;
  message: string;
}

const EXECUTORS = new Set(['CELERY', 'KUBERNETES', 'ASTRO']);
const SCHEDULER_SIZES = new Set(['SMALL', 'MEDIUM', 'LARGE', 'EXTRA_LARGE']);

type Body = Record<string, unknown>;

function check(problems: FieldProblem[], ok: boolean, field: string, message: string, code = 'invalid'): void {
  if (!ok) problems.push({ code, field, message });
}

function validateQueues(problems: FieldProblem[], body: Body, hybrid: boolean): void {
  const executor = body.executor;
  const queues = body.workerQueues;
  if (executor === 'KUBERNETES' || (!hybrid && (body.remoteExecution as Body | undefined)?.enabled === true)) return;
  if (queues === undefined) return; // the server keeps a default queue
  if (!Array.isArray(queues)) return check(problems, false, 'workerQueues', 'workerQueues must be an array');
  check(problems, queues.some((q) => (q as Body).name === 'default'), 'workerQueues', 'a worker queue named "default" is required');
  queues.forEach((raw, i) => {
    const q = raw as Body;
    for (const key of ['maxWorkerCount', 'minWorkerCount', 'workerConcurrency']) {
      check(problems, typeof q[key] === 'number', `workerQueues[${i}].${key}`, `${key} is required`, 'required');
    }
    check(problems, typeof q.name === 'string', `workerQueues[${i}].name`, 'name is required', 'required');
    check(problems, typeof q.isDefault === 'boolean', `workerQueues[${i}].isDefault`, 'isDefault is required', 'required');
    if (hybrid) check(problems, typeof q.nodePoolId === 'string', `workerQueues[${i}].nodePoolId`, 'nodePoolId is required for Hybrid', 'required');
    else check(problems, typeof q.astroMachine === 'string', `workerQueues[${i}].astroMachine`, 'astroMachine is required for Astro Hosted', 'required');
  });
}

function nextEnv(problems: FieldProblem[], d: FakeDeployment, body: Body): FakeEnvVar[] {
  const list = body.environmentVariables;
  if (!Array.isArray(list)) {
    check(problems, false, 'environmentVariables', 'environmentVariables must be an array', 'required');
    return d.environmentVariables;
  }
  const now = new Date().toISOString();
  return list.map((raw, i) => {
    const v = raw as Body;
    check(problems, typeof v.key === 'string' && v.key.length > 0, `environmentVariables[${i}].key`, 'key is required', 'required');
    check(problems, typeof v.isSecret === 'boolean', `environmentVariables[${i}].isSecret`, 'isSecret is required', 'required');
    const existing = d.environmentVariables.find((e) => e.key === v.key);
    if (v.value === undefined || v.value === null) {
      if (v.isSecret === true) {
        check(problems, existing !== undefined, `environmentVariables[${i}].value`, 'value is required for a new secret', 'required');
        return { key: String(v.key), value: existing?.value ?? '', isSecret: true, updatedAt: existing?.updatedAt ?? now };
      }
      return { key: String(v.key), value: '', isSecret: false, updatedAt: now };
    }
    const value = String(v.value);
    const unchanged = existing && existing.value === value && existing.isSecret === v.isSecret;
    return { key: String(v.key), value, isSecret: v.isSecret === true, updatedAt: unchanged ? existing.updatedAt : now };
  });
}

/** Queues as stored: read-only fields (ids of new queues, pod sizes) are filled in by the server. */
function mergeQueues(previous: unknown, next: Body[]): Body[] {
  const old = Array.isArray(previous) ? (previous as Body[]) : [];
  return next.map((q) => {
    const match = old.find((o) => (q.id !== undefined && o.id === q.id) || o.name === q.name);
    return { ...q, id: q.id ?? match?.id ?? `clq${Math.random().toString(36).slice(2, 12)}`, podCpu: match?.podCpu ?? '1', podMemory: match?.podMemory ?? '2Gi' };
  });
}

/** Validate `body` against deployment `d` and apply it. Returns the problems (nothing applied when any). */
export function applyUpdateBody(d: FakeDeployment, body: Body): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const hybrid = d.type === 'HYBRID';
  check(problems, body.type === d.type, 'type', `type must be ${d.type} for this deployment`, body.type === undefined ? 'required' : 'invalid');
  check(problems, typeof body.name === 'string' && body.name.length > 0, 'name', 'name is required', 'required');
  check(problems, body.workspaceId === d.workspaceId, 'workspaceId', 'workspaceId must be the deployment’s workspace', 'required');
  check(problems, typeof body.executor === 'string' && EXECUTORS.has(body.executor), 'executor', 'executor is required', 'required');
  check(problems, typeof body.isCicdEnforced === 'boolean', 'isCicdEnforced', 'isCicdEnforced is required', 'required');
  check(problems, typeof body.isDagDeployEnabled === 'boolean', 'isDagDeployEnabled', 'isDagDeployEnabled is required', 'required');
  if (hybrid) {
    const s = body.scheduler as Body | undefined;
    check(problems, !!s && typeof s.au === 'number' && typeof s.replicas === 'number', 'scheduler', 'scheduler.au and scheduler.replicas are required', 'required');
    if (body.executor === 'KUBERNETES') check(problems, typeof body.taskPodNodePoolId === 'string', 'taskPodNodePoolId', 'taskPodNodePoolId is required for KUBERNETES', 'required');
  } else {
    check(problems, typeof body.schedulerSize === 'string' && SCHEDULER_SIZES.has(body.schedulerSize), 'schedulerSize', 'schedulerSize is required', 'required');
    check(problems, typeof body.isHighAvailability === 'boolean', 'isHighAvailability', 'isHighAvailability is required', 'required');
    check(problems, !(body.isDevelopmentMode === true && d.spec.isDevelopmentMode !== true), 'isDevelopmentMode', 'isDevelopmentMode cannot be turned on for an existing deployment');
    // astro-cli#1578: hibernation is for development-mode deployments only.
    check(
      problems,
      body.scalingSpec === undefined || d.spec.isDevelopmentMode === true,
      'scalingSpec',
      'scalingSpec (hibernation) can only be set on a development-mode deployment',
    );
    if (!(body.remoteExecution as Body | undefined)?.enabled) {
      for (const key of ['defaultTaskPodCpu', 'defaultTaskPodMemory', 'resourceQuotaCpu', 'resourceQuotaMemory']) {
        check(problems, typeof body[key] === 'string', key, `${key} is required when Remote Execution is disabled`, 'required');
      }
    }
  }
  validateQueues(problems, body, hybrid);
  const env = nextEnv(problems, d, body);
  if (problems.length) return problems;

  d.name = body.name as string;
  d.executor = body.executor as string;
  d.isCicdEnforced = body.isCicdEnforced as boolean;
  d.isDagDeployEnabled = body.isDagDeployEnabled as boolean;
  d.environmentVariables = env;
  const spec: Record<string, unknown> = { ...d.spec };
  // Whole-body semantics: optional settings that are omitted are cleared.
  for (const key of ['contactEmails', 'scalingSpec', 'description']) delete spec[key];
  const copy = hybrid
    ? ['taskPodNodePoolId', 'workerQueues', 'contactEmails', 'description']
    : ['schedulerSize', 'isHighAvailability', 'isDevelopmentMode', 'defaultTaskPodCpu', 'defaultTaskPodMemory', 'resourceQuotaCpu', 'resourceQuotaMemory', 'workerQueues', 'contactEmails', 'scalingSpec', 'description'];
  for (const key of copy) if (body[key] !== undefined) spec[key] = structuredClone(body[key]);
  if (Array.isArray(spec.workerQueues)) spec.workerQueues = mergeQueues(d.spec.workerQueues, spec.workerQueues as Body[]);
  if (hybrid) {
    const s = body.scheduler as { au: number; replicas: number };
    spec.schedulerAu = s.au;
    spec.schedulerReplicas = s.replicas;
  }
  d.spec = spec;
  return [];
}
