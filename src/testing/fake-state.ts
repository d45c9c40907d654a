/**
 * The fake Astro's data model: deployments of each type with the fields the real API returns,
 * deploy records, and the rollout state machine (finalize -> DEPLOYING -> HEALTHY after a delay,
 * with desired vs current DAG version and image tag).
 */
import { randomBytes } from 'node:crypto';

/** Generate an id shaped like Astro's (cuid-like, lowercase). */
export function fakeId(prefix = 'cl'): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  const bytes = randomBytes(23);
  let out = prefix;
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out.slice(0, 25);
}

/** An environment variable as the fake stores it (secret values are kept but never returned). */
export interface FakeEnvVar {
  key: string;
  value: string;
  isSecret: boolean;
  updatedAt: string;
}

/** How the next rollout of a deployment behaves. */
export interface RolloutBehaviour {
  /** Milliseconds from finalize until the deployment reports the new version. @default the server's rolloutDelayMs */
  delayMs?: number;
  /** `healthy`: applied and HEALTHY; `failed`: deploy FAILED, deployment UNHEALTHY; `stuck`: stays DEPLOYING. @default 'healthy' */
  outcome?: 'healthy' | 'failed' | 'stuck';
  /** `statusReason` reported with a failed outcome. */
  statusReason?: string;
}

/** What a test can set when it adds a deployment. Everything has a realistic default. */
export interface FakeDeploymentInit {
  id?: string;
  name?: string;
  /** @default 'STANDARD' */
  type?: 'STANDARD' | 'DEDICATED' | 'HYBRID';
  workspaceId?: string;
  /** @default '3.1-2' (Airflow 3.1) */
  runtimeVersion?: string;
  /** @default true */
  isDagDeployEnabled?: boolean;
  /** @default false */
  isCicdEnforced?: boolean;
  /** @default 'HEALTHY' */
  status?: string;
  /** @default 'CELERY' */
  executor?: 'CELERY' | 'KUBERNETES' | 'ASTRO';
  environmentVariables?: Array<{ key: string; value: string; isSecret?: boolean }>;
  /** Current DAG tarball version. */
  dagTarballVersion?: string;
  /** Current image tag. @default the runtime version */
  imageTag?: string;
  /** Remote Execution deployments never take DAG uploads. @default false */
  remoteExecution?: boolean;
  /**
   * Extra or replacement type-specific fields (e.g. `contactEmails`, `scalingSpec`, `schedulerSize`).
   * A key set to `undefined` is left out of the API view, as for an optional field the API omits.
   */
  spec?: Record<string, unknown>;
  /**
   * Top-level fields the API view leaves out, e.g. `['type']` or `['executor']`: the v1 spec marks
   * `type`, `executor`, `isDevelopmentMode` and others optional, and a client must cope when they
   * are missing. The fake itself still knows them (the update is validated against them).
   */
  omitFromView?: string[];
}

/** A deployment as the fake holds it (internal; the API view is derived from it). */
export interface FakeDeployment {
  id: string;
  name: string;
  type: 'STANDARD' | 'DEDICATED' | 'HYBRID';
  organizationId: string;
  workspaceId: string;
  namespace: string;
  runtimeVersion: string;
  isDagDeployEnabled: boolean;
  isCicdEnforced: boolean;
  status: string;
  statusReason?: string;
  executor: string;
  environmentVariables: FakeEnvVar[];
  dagTarballVersion?: string;
  desiredDagTarballVersion?: string;
  imageTag: string;
  imageRepository: string;
  remoteExecution: boolean;
  /** Type-specific fields returned by GET and required by update (scheduler, queues, quotas, ...). */
  spec: Record<string, unknown>;
  /** Top-level fields left out of the API view (see {@link FakeDeploymentInit.omitFromView}). */
  omitFromView: string[];
  /** Behaviour of the next rollouts. */
  rollout: RolloutBehaviour;
  /**
   * Import errors the deployment's Airflow REST API reports (`GET .../importErrors`), set by tests
   * with `setImportErrors`. @default none
   */
  importErrors: FakeImportError[];
  createdAt: string;
  updatedAt: string;
}

/**
 * An import error of the fake deployment's Airflow. `filename` is relative to the dags folder
 * (`etl/dag.py`); the API reports it as Airflow does: the absolute path under
 * `/usr/local/airflow/dags` on Airflow 2, relative with `bundle_name: 'dags-folder'` on Airflow 3.
 */
export interface FakeImportError {
  filename: string;
  stackTrace: string;
  /** @default when it was set */
  timestamp?: string;
}

/** A deploy record. */
export interface FakeDeploy {
  id: string;
  deploymentId: string;
  type: 'IMAGE_AND_DAG' | 'IMAGE_ONLY' | 'DAG_ONLY' | 'BUNDLE';
  status: 'INITIALIZED' | 'DEPLOYED' | 'FAILED';
  description: string;
  git?: Record<string, unknown>;
  imageRepository: string;
  imageTag: string;
  isDagDeployEnabled: boolean;
  dagsUploadUrl?: string;
  bundleUploadUrl?: string;
  dagTarballVersion?: string;
  bundleTarballVersion?: string;
  /** Set on a deploy made by `POST .../deploys/{deployId}/rollback`: the deploy it rolled back to (a guess of the field's meaning). */
  rollbackFromId?: string;
  /** How many times finalize was accepted for this deploy (tests assert exactly once). */
  finalizeCount: number;
  createdAt: string;
  updatedAt: string;
}

function typeSpec(type: FakeDeployment['type'], executor: string): Record<string, unknown> {
  const queues =
    executor === 'CELERY' || executor === 'ASTRO'
      ? [
          {
            id: fakeId(),
            name: 'default',
            isDefault: true,
            maxWorkerCount: 10,
            minWorkerCount: 0,
            workerConcurrency: 5,
            ...(type === 'HYBRID' ? { nodePoolId: fakeId(), podCpu: '1', podMemory: '2Gi' } : { astroMachine: 'A5', podCpu: '1', podMemory: '2Gi' }),
          },
        ]
      : undefined;
  if (type === 'HYBRID') {
    return {
      description: '',
      clusterId: fakeId(),
      schedulerAu: 5,
      schedulerReplicas: 1,
      ...(executor === 'KUBERNETES' ? { taskPodNodePoolId: fakeId() } : {}),
      ...(queues ? { workerQueues: queues } : {}),
    };
  }
  return {
    description: '',
    schedulerSize: 'SMALL',
    isHighAvailability: false,
    isDevelopmentMode: false,
    defaultTaskPodCpu: '0.25',
    defaultTaskPodMemory: '0.5Gi',
    resourceQuotaCpu: '10',
    resourceQuotaMemory: '20Gi',
    cloudProvider: 'AWS',
    region: 'us-east-1',
    ...(type === 'DEDICATED' ? { clusterId: fakeId() } : {}),
    ...(queues ? { workerQueues: queues } : {}),
  };
}

/** Build a deployment from test input. */
export function newDeployment(
  init: FakeDeploymentInit,
  organizationId: string,
  defaultWorkspaceId: string,
  imageRegistry: string,
): FakeDeployment {
  const id = init.id ?? fakeId();
  const type = init.type ?? 'STANDARD';
  const executor = init.executor ?? 'CELERY';
  const now = new Date().toISOString();
  const runtimeVersion = init.runtimeVersion ?? '3.1-2';
  const deployment: FakeDeployment = {
    id,
    name: init.name ?? `deployment-${id.slice(-5)}`,
    type,
    organizationId,
    workspaceId: init.workspaceId ?? defaultWorkspaceId,
    namespace: `${['cosmic', 'galactic', 'stellar'][id.charCodeAt(3) % 3]}-orbit-${id.slice(-4)}`,
    runtimeVersion,
    isDagDeployEnabled: init.isDagDeployEnabled ?? true,
    isCicdEnforced: init.isCicdEnforced ?? false,
    status: init.status ?? 'HEALTHY',
    executor,
    environmentVariables: (init.environmentVariables ?? []).map((v) => ({
      key: v.key,
      value: v.value,
      isSecret: v.isSecret ?? false,
      updatedAt: now,
    })),
    imageTag: init.imageTag ?? runtimeVersion,
    imageRepository: `${imageRegistry}/${organizationId}/${id}`,
    remoteExecution: init.remoteExecution ?? false,
    spec: { ...typeSpec(type, executor), ...init.spec },
    omitFromView: [...(init.omitFromView ?? [])],
    rollout: {},
    importErrors: [],
    createdAt: now,
    updatedAt: now,
  };
  if (init.dagTarballVersion) {
    deployment.dagTarballVersion = init.dagTarballVersion;
    deployment.desiredDagTarballVersion = init.dagTarballVersion;
  }
  return deployment;
}

/**
 * The scheduler machines of Astro Hosted (`deployment-options` `schedulerMachines`) and what a
 * deployment of each size reports as `schedulerCpu` / `schedulerMemory`.
 */
export const FAKE_SCHEDULER_MACHINES: ReadonlyArray<{ name: string; spec: { cpu: string; memory: string } }> = [
  { name: 'SMALL', spec: { cpu: '1', memory: '2Gi' } },
  { name: 'MEDIUM', spec: { cpu: '2', memory: '4Gi' } },
  { name: 'LARGE', spec: { cpu: '4', memory: '8Gi' } },
  { name: 'EXTRA_LARGE', spec: { cpu: '8', memory: '16Gi' } },
];

/** One Astro unit (AU) of a Hybrid scheduler: 0.1 CPU and 0.375 GiB. */
const AU = { cpu: 0.1, memoryGi: 0.375 };

/** Who created and last updated the fake's deployments (`createdBy`, `updatedBy`: a `BasicSubjectProfile`). */
const FAKE_SUBJECT = { id: 'clfakeastrouser0000000001', subjectType: 'USER', username: 'ops@example.com', fullName: 'Fake Astro User' } as const;

/** The scheduler and webserver resources a deployment reports, from its type and spec. */
function resourcesView(d: FakeDeployment): Record<string, unknown> {
  const spec = d.spec;
  let scheduler: { cpu: string; memory: string };
  let replicas: number;
  if (d.type === 'HYBRID') {
    const au = typeof spec.schedulerAu === 'number' ? spec.schedulerAu : 5;
    scheduler = { cpu: String(Math.round(au * AU.cpu * 100) / 100), memory: `${Math.round(au * AU.memoryGi * 1000) / 1000}Gi` };
    replicas = typeof spec.schedulerReplicas === 'number' ? spec.schedulerReplicas : 1;
  } else {
    scheduler = (FAKE_SCHEDULER_MACHINES.find((m) => m.name === spec.schedulerSize) ?? FAKE_SCHEDULER_MACHINES[0]!).spec;
    replicas = spec.isHighAvailability === true ? 2 : 1;
  }
  return { schedulerCpu: scheduler.cpu, schedulerMemory: scheduler.memory, schedulerReplicas: replicas, webServerCpu: '0.5', webServerMemory: '1Gi' };
}

/** The API's JSON view of a deployment (secret values withheld, as the real API does). */
export function deploymentView(d: FakeDeployment, webBase: string): Record<string, unknown> {
  const airflowMajor = /^(\d+)\.\d+-\d+/.exec(d.runtimeVersion)?.[1] ?? '2';
  // Real Astro gives `<host>/<path>/api/v1` (Airflow 2) or `.../api/v2` (Airflow 3) without a
  // scheme; the fake's Airflow is served over http on 127.0.0.1, so its URL carries `http://`.
  const airflowApiUrl = `${webBase}/airflow/${d.namespace}/api/${airflowMajor === '3' ? 'v2' : 'v1'}`;
  const uiUrl = `${webBase}/${d.namespace}/home`;
  const view: Record<string, unknown> = {
    id: d.id,
    name: d.name,
    type: d.type,
    organizationId: d.organizationId,
    workspaceId: d.workspaceId,
    namespace: d.namespace,
    runtimeVersion: d.runtimeVersion,
    astroRuntimeVersion: d.runtimeVersion,
    airflowVersion: airflowMajor === '3' ? `${d.runtimeVersion.split('-')[0]}.0` : '2.10.5',
    status: d.status,
    ...(d.statusReason ? { statusReason: d.statusReason } : {}),
    isDagDeployEnabled: d.isDagDeployEnabled,
    isCicdEnforced: d.isCicdEnforced,
    executor: d.executor,
    imageTag: d.imageTag,
    imageRepository: d.imageRepository,
    imageVersion: d.runtimeVersion,
    ...(d.dagTarballVersion !== undefined ? { dagTarballVersion: d.dagTarballVersion } : {}),
    ...(d.desiredDagTarballVersion !== undefined ? { desiredDagTarballVersion: d.desiredDagTarballVersion } : {}),
    environmentVariables: d.environmentVariables.map((v) => ({
      key: v.key,
      isSecret: v.isSecret,
      updatedAt: v.updatedAt,
      ...(v.isSecret ? {} : { value: v.value }),
    })),
    remoteExecution: { enabled: d.remoteExecution, allowedIpAddressRanges: [], remoteApiUrl: airflowApiUrl },
    webServerUrl: uiUrl,
    uiUrl,
    webServerAirflowApiUrl: airflowApiUrl,
    apiUrl: airflowApiUrl,
    webServerIngressHostname: new URL(webBase).host,
    ...resourcesView(d),
    createdAt: d.createdAt,
    createdBy: { ...FAKE_SUBJECT },
    updatedAt: d.updatedAt,
    updatedBy: { ...FAKE_SUBJECT },
    ...structuredClone(d.spec),
  };
  for (const key of d.omitFromView) delete view[key];
  return view;
}

/** The API's JSON view of a deploy record. */
export function deployView(d: FakeDeploy): Record<string, unknown> {
  return {
    id: d.id,
    deploymentId: d.deploymentId,
    type: d.type,
    status: d.status,
    description: d.description,
    imageRepository: d.imageRepository,
    // Marked required by the spec but documented as "appears only if specified": an empty tag
    // (a DAG-only deploy to a deployment without one) is left out, as the API may do.
    ...(d.imageTag ? { imageTag: d.imageTag } : {}),
    isDagDeployEnabled: d.isDagDeployEnabled,
    ...(d.dagsUploadUrl ? { dagsUploadUrl: d.dagsUploadUrl } : {}),
    ...(d.bundleUploadUrl ? { bundleUploadUrl: d.bundleUploadUrl } : {}),
    ...(d.dagTarballVersion !== undefined ? { dagTarballVersion: d.dagTarballVersion } : {}),
    ...(d.rollbackFromId ? { rollbackFromId: d.rollbackFromId } : {}),
    ...(d.git ? { git: d.git } : {}),
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

/** A deploy tag as Astro generates it: `deploy-YYYY-MM-DDTHH-MM-SS` plus a counter for uniqueness. */
export function deployImageTag(counter: number): string {
  const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
  return `deploy-${stamp}-${counter}`;
}
