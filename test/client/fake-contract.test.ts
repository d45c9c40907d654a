/**
 * The fake Astro's answers against the v1 contract (shared docs, astro-v1-contract.md, read from
 * Astronomer's generated Go client): in every answer, each field its schema marks required is
 * there, and each field that is there has the contract's type, down to nested objects and enums.
 *
 * {@link CONTRACT} is the doc's schema tables and enums, transcribed whole (`?` marks an optional
 * field, a Go pointer's `*` dropped); when the doc is on this machine, the first test checks the
 * transcription against it. {@link NESTED} holds the types the doc's tables name but do not list,
 * from the same generated client (astro-cli `astro-client-v1/api.gen.go` at ed93cc59).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AstroClient } from '../../src/index.js';
import { createFakeAstro, type FakeAstro } from '../../src/testing/index.js';

/** Field name to Go type; `?` first: optional. */
type Schemas = Record<string, Record<string, string>>;

const CONTRACT_DOC = process.env.ASTRO_V1_CONTRACT_DOC ?? '/work/shared/docs/astro-v1-contract.md';

const CONTRACT: Schemas = {
  Deployment: {
    airflowVersion: 'string', apiUrl: 'string', astroRuntimeVersion: 'string', cloudProvider: '?DeploymentCloudProvider',
    clusterId: '?string', clusterName: '?string', contactEmails: '?[]string', createdAt: 'time.Time',
    createdBy: 'BasicSubjectProfile', dagTarballVersion: '?string', defaultTaskPodCpu: '?string',
    defaultTaskPodMemory: '?string', description: '?string', desiredDagTarballVersion: '?string', drExternalIPs: '?[]string',
    drOidcIssuerUrl: '?string', effectiveDRWorkloadIdentity: '?string', effectiveWorkloadIdentity: '?string',
    environmentVariables: '?[]DeploymentEnvironmentVariable', executor: '?DeploymentExecutor', externalIPs: '?[]string',
    id: 'string', imageRepository: 'string', imageTag: 'string', imageVersion: '?string', isCicdEnforced: 'bool',
    isDagDeployEnabled: 'bool', isDevelopmentMode: '?bool', isHighAvailability: '?bool', name: 'string', namespace: 'string',
    oidcIssuerUrl: '?string', organizationId: 'string', region: '?string', remoteExecution: '?DeploymentRemoteExecution',
    resourceQuotaCpu: '?string', resourceQuotaMemory: '?string', runtimeVersion: 'string', scalingSpec: '?DeploymentScalingSpec',
    scalingStatus: '?DeploymentScalingStatus', schedulerAu: '?int', schedulerCpu: 'string', schedulerMemory: 'string',
    schedulerReplicas: 'int', schedulerSize: '?DeploymentSchedulerSize', status: 'DeploymentStatus', statusReason: '?string',
    taskPodNodePoolId: '?string', type: '?DeploymentType', uiUrl: 'string', updatedAt: 'time.Time',
    updatedBy: 'BasicSubjectProfile', webServerAirflowApiUrl: 'string', webServerCpu: 'string',
    webServerIngressHostname: 'string', webServerMemory: 'string', webServerReplicas: '?int', webServerUrl: 'string',
    workerQueues: '?[]WorkerQueue', workspaceId: 'string', workspaceName: '?string',
  },
  WorkerQueue: {
    astroMachine: '?string', id: 'string', isDefault: 'bool', maxWorkerCount: 'int', minWorkerCount: 'int', name: 'string',
    nodePoolId: '?string', podCpu: 'string', podEphemeralStorage: '?string', podMemory: 'string', workerConcurrency: 'int',
  },
  DeploymentEnvironmentVariable: { isSecret: 'bool', key: 'string', updatedAt: 'time.Time', value: '?string' },
  DeploymentScalingSpec: { hibernationSpec: '?DeploymentHibernationSpec' },
  DeploymentHibernationSpec: { override: '?DeploymentHibernationOverride', schedules: '?[]DeploymentHibernationSchedule' },
  DeploymentHibernationSchedule: { description: '?string', hibernateAtCron: 'string', isEnabled: 'bool', wakeAtCron: 'string' },
  DeploymentHibernationOverride: { isActive: '?bool', isHibernating: '?bool', overrideUntil: '?time.Time' },
  DeploymentRemoteExecution: {
    allowedIpAddressRanges: '[]string', enabled: 'bool', remoteApiUrl: 'string', taskLogBucket: '?string',
    taskLogUrlPattern: '?string',
  },
  Deploy: {
    airflowVersion: '?string', astroRuntimeVersion: '?string', bundleMountPath: '?string', bundleUploadUrl: '?string',
    bundles: '?[]Bundle', createdAt: 'time.Time', createdBySubject: '?BasicSubjectProfile', dagTarballVersion: '?string',
    dagsUploadUrl: '?string', deploymentId: 'string', description: '?string', git: '?DeployGit', id: 'string',
    imageRepository: 'string', imageTag: 'string', isDagDeployEnabled: 'bool', rollbackFromId: '?string', status: 'DeployStatus',
    type: 'DeployType', updatedAt: '?time.Time', updatedBySubject: '?BasicSubjectProfile',
  },
  DeployGit: {
    account: '?string', authorName: '?string', authorUrl: '?string', authorUsername: '?string', beforeCommitSha: '?string',
    branch: '?string', commitSha: 'string', commitUrl: '?string', path: '?string', provider: 'DeployGitProvider',
    remoteUrl: '?string', repo: '?string',
  },
  DeploysPaginated: { deploys: '[]Deploy', limit: 'int', offset: 'int', totalCount: 'int' },
  DeploymentsPaginated: { deployments: '[]Deployment', limit: 'int', offset: 'int', totalCount: 'int' },
  DeploymentOptions: {
    executors: '[]string', resourceQuotas: 'ResourceQuotaOptions', runtimeReleases: '[]RuntimeRelease',
    schedulerMachines: '[]SchedulerMachine', workerMachines: '[]WorkerMachine', workerQueues: 'WorkerQueueOptions',
    workloadIdentityOptions: '?[]WorkloadIdentityOption',
  },
  RuntimeRelease: {
    airflowDatabaseMigration: 'bool', airflowVersion: 'string', channel: 'string', releaseDate: 'time.Time',
    stellarDatabaseMigration: 'bool', version: 'string',
  },
  Error: { fieldErrors: '?[]FieldValidationError', message: 'string', requestId: 'string', statusCode: 'int' },
};
const CONTRACT_ENUMS: Record<string, string[]> = {
  DeploymentType: ['DEDICATED', 'HYBRID', 'STANDARD'],
  DeploymentExecutor: ['ASTRO', 'CELERY', 'KUBERNETES'],
  DeploymentStatus: ['CREATING', 'DEPLOYING', 'HEALTHY', 'HIBERNATING', 'UNHEALTHY', 'UNKNOWN'],
  DeployStatus: ['DEPLOYED', 'FAILED', 'INITIALIZED'],
  DeployType: ['DAG_ONLY', 'IMAGE_AND_DAG', 'IMAGE_ONLY'],
  DeploymentSchedulerSize: ['EXTRA_LARGE', 'LARGE', 'MEDIUM', 'SMALL'],
  CreateDeployRequestType: ['BUNDLE', 'DAG_ONLY', 'IMAGE_AND_DAG', 'IMAGE_ONLY'],
};

/** Types the contract's tables name without listing them: astro-client-v1/api.gen.go at ed93cc59. */
const NESTED: Schemas = {
  BasicSubjectProfile: { apiTokenName: '?string', avatarUrl: '?string', fullName: '?string', id: 'string', subjectType: '?BasicSubjectProfileSubjectType', username: '?string' },
  FieldValidationError: { code: 'string', field: 'string', message: 'string' },
  ResourceQuotaOptions: { defaultPodSize: 'ResourceOption', resourceQuota: 'ResourceOption' },
  ResourceOption: { cpu: 'ResourceRange', memory: 'ResourceRange' },
  ResourceRange: { ceiling: 'string', default: 'string', floor: 'string' },
  SchedulerMachine: { name: 'SchedulerMachineName', spec: 'MachineSpec' },
  WorkerMachine: { concurrency: 'Range', name: 'WorkerMachineName', spec: 'MachineSpec' },
  MachineSpec: { concurrency: '?float32', cpu: 'string', ephemeralStorage: '?string', memory: 'string' },
  Range: { ceiling: 'float32', default: 'float32', floor: 'float32' },
  WorkerQueueOptions: { maxWorkers: 'Range', minWorkers: 'Range', workerConcurrency: 'Range' },
};
const NESTED_ENUMS: Record<string, string[]> = {
  BasicSubjectProfileSubjectType: ['SERVICEKEY', 'USER'],
  DeployGitProvider: ['GENERIC', 'GITHUB'],
  DeploymentCloudProvider: ['AWS', 'AZURE', 'GCP'],
  SchedulerMachineName: ['EXTRA_LARGE', 'LARGE', 'MEDIUM', 'SMALL'],
  WorkerMachineName: ['A5', 'A10', 'A20', 'A40', 'A60', 'A120', 'A160'],
};

const SCHEMAS: Schemas = { ...CONTRACT, ...NESTED };
const ENUMS: Record<string, string[]> = { ...CONTRACT_ENUMS, ...NESTED_ENUMS };

/** The schema tables and enums of the contract doc, in {@link CONTRACT}'s form. */
function readContractDoc(text: string): { schemas: Schemas; enums: Record<string, string[]> } {
  const schemas: Schemas = {};
  for (const section of text.split(/^## /m).slice(1)) {
    const name = section.slice(0, section.indexOf('\n')).trim();
    if (!(name in CONTRACT)) continue;
    schemas[name] = Object.fromEntries(
      [...section.matchAll(/^\| `(\w+)` \| `\*?([^`]+)` \| (required|optional) \|$/gm)].map((m) => [m[1]!, `${m[3] === 'optional' ? '?' : ''}${m[2]}`]),
    );
  }
  const enums = Object.fromEntries([...text.matchAll(/^- enum `(\w+)`: (.+)$/gm)].map((m) => [m[1]!, m[2]!.split(',').map((v) => v.trim())]));
  return { schemas, enums };
}

/** Every way `value` breaks `type` (a Go type of the contract), each named by its path. */
function problemsOf(value: unknown, type: string, path: string): string[] {
  if (type.startsWith('[]')) {
    if (!Array.isArray(value)) return [`${path}: ${JSON.stringify(value)} is not an array (${type})`];
    return value.flatMap((item, i) => problemsOf(item, type.slice(2), `${path}[${i}]`));
  }
  const wrong = (what: string) => [`${path}: ${JSON.stringify(value)} is not ${what} (${type})`];
  switch (type) {
    case 'string':
      return typeof value === 'string' ? [] : wrong('a string');
    case 'bool':
      return typeof value === 'boolean' ? [] : wrong('a boolean');
    case 'int':
      return Number.isInteger(value) ? [] : wrong('an integer');
    case 'float32':
      return typeof value === 'number' && Number.isFinite(value) ? [] : wrong('a number');
    case 'time.Time':
      return typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value) ? [] : wrong('an RFC 3339 time');
  }
  const values = ENUMS[type];
  if (values) return typeof value === 'string' && values.includes(value) ? [] : wrong(`one of ${values.join(', ')}`);
  const schema = SCHEMAS[type];
  if (!schema) return [`${path}: the contract does not describe ${type}`];
  if (!value || typeof value !== 'object' || Array.isArray(value)) return wrong('an object');
  const object = value as Record<string, unknown>;
  return Object.entries(schema).flatMap(([field, spec]) => {
    const optional = spec.startsWith('?');
    if (!(field in object) || object[field] === undefined) return optional ? [] : [`${path}.${field}: required, missing`];
    return problemsOf(object[field], optional ? spec.slice(1) : spec, `${path}.${field}`);
  });
}

function dagsFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fake-contract-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'etl.py'), 'from airflow import DAG\n');
  return dir;
}

/** A fake with a deployment of each kind, and every answer it gives, by schema. */
async function answersOfEveryKind(): Promise<Array<{ what: string; schema: string; body: unknown }>> {
  const astro: FakeAstro = await createFakeAstro({
    rolloutDelayMs: 20,
    deployments: [
      {
        id: 'clstandard',
        environmentVariables: [
          { key: 'PLAIN', value: 'a' },
          { key: 'SECRET', value: 'b', isSecret: true },
        ],
        dagTarballVersion: '2026-01-01T00:00:00.0000000Z',
      },
      { id: 'clhighavail', spec: { isHighAvailability: true, schedulerSize: 'LARGE' } },
      { id: 'cldedicated', type: 'DEDICATED', executor: 'KUBERNETES' },
      { id: 'clhybrid', type: 'HYBRID' },
      { id: 'clhybridk8s', type: 'HYBRID', executor: 'KUBERNETES', runtimeVersion: '12.7.1' },
      { id: 'clastroexec', executor: 'ASTRO', isDagDeployEnabled: false },
      { id: 'clremote', remoteExecution: true, isDagDeployEnabled: false },
      {
        id: 'cldevmode',
        spec: {
          isDevelopmentMode: true,
          scalingSpec: {
            hibernationSpec: {
              schedules: [{ hibernateAtCron: '0 20 * * *', wakeAtCron: '0 6 * * 1-5', isEnabled: true, description: 'nights' }],
              override: { isHibernating: true, isActive: true, overrideUntil: '2030-01-01T00:00:00Z' },
            },
          },
        },
      },
    ],
  });
  onTestFinished(() => astro.close());
  const answers: Array<{ what: string; schema: string; body: unknown }> = [];
  const call = async (schema: string, method: string, path: string, body?: unknown, token = astro.token) => {
    const res = await fetch(`${astro.baseUrl}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json: unknown = await res.json();
    answers.push({ what: `${method} ${path} (${res.status})`, schema, body: json });
    return json as Record<string, unknown>;
  };
  const org = `/organizations/${astro.organizationId}`;
  const ids = ['clstandard', 'clhighavail', 'cldedicated', 'clhybrid', 'clhybridk8s', 'clastroexec', 'clremote', 'cldevmode'];

  // Deploys through the SDK first, so the deployments carry their state after a deploy and a rollout.
  const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
  await client.deployDags({ deploymentId: 'clstandard', dagsDir: dagsFolder(), wait: { pollIntervalMs: 20 } });
  await client.setDagDeploy('clhybrid', false);

  for (const id of ids) await call('Deployment', 'GET', `${org}/deployments/${id}`);
  await call('DeploymentsPaginated', 'GET', `${org}/deployments?limit=100`);
  await call('DeploymentsPaginated', 'GET', `${org}/deployments?limit=2&offset=1`);
  await call('DeploymentOptions', 'GET', `${org}/deployment-options`);

  const deploys = `${org}/deployments/clstandard/deploys`;
  const git = { provider: 'GITHUB', commitSha: 'a'.repeat(40), account: 'acme', repo: 'dags', branch: 'main', commitUrl: `https://github.com/acme/dags/commit/${'a'.repeat(40)}` };
  const image = await call('Deploy', 'POST', deploys, { type: 'IMAGE_AND_DAG', description: 'image and DAGs', git });
  await call('Deploy', 'POST', deploys, { type: 'IMAGE_ONLY', description: '' });
  await call('Deploy', 'POST', `${org}/deployments/clastroexec/deploys`, { type: 'DAG_ONLY' });
  await call('Deploy', 'POST', `${org}/deployments/clremote/deploys`, { type: 'IMAGE_ONLY' });
  await call('Deploy', 'POST', `${deploys}/${String(image.id)}/finalize`, { dagTarballVersion: '' });
  await call('Deploy', 'GET', `${deploys}/${String(image.id)}`);
  await call('DeploysPaginated', 'GET', `${deploys}?limit=50`);
  const [first] = astro.deploys('clstandard');
  await call('Deploy', 'POST', `${deploys}/${first!.id}/rollback`, { description: 'back' });

  // Errors: unknown deployment, a refused body, no token, another organization, a wrong method.
  await call('Error', 'GET', `${org}/deployments/clnosuchdeployment`);
  await call('Error', 'POST', deploys, { type: 'NOT_A_TYPE' });
  await call('Error', 'GET', `${org}/deployments/clstandard`, undefined, '');
  await call('Error', 'GET', `/organizations/clotherorg/deployments/clstandard`);
  await call('Error', 'PUT', deploys, {});
  return answers;
}

describe('the fake Astro answers as the v1 contract says', () => {
  it.skipIf(!existsSync(CONTRACT_DOC))("CONTRACT is the contract doc's tables and enums", () => {
    const doc = readContractDoc(readFileSync(CONTRACT_DOC, 'utf8'));
    expect(doc.schemas).toEqual(CONTRACT);
    expect(doc.enums).toEqual(CONTRACT_ENUMS);
  });

  it('every required field of each schema, in every answer, with the type the contract gives it', async () => {
    const answers = await answersOfEveryKind();
    expect(answers.map((a) => a.schema)).toEqual(expect.arrayContaining(['Deployment', 'DeploymentsPaginated', 'DeploymentOptions', 'Deploy', 'DeploysPaginated', 'Error']));
    const problems = answers.flatMap((a) => problemsOf(a.body, a.schema, a.what));
    expect(problems).toEqual([]);
  });

  it('a test can still leave fields out of a deployment: omitFromView, or a spec key set to undefined', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'clbare', omitFromView: ['type', 'uiUrl', 'createdBy'], spec: { webServerCpu: undefined } }] });
    onTestFinished(() => astro.close());
    const res = await fetch(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/clbare`, { headers: { authorization: `Bearer ${astro.token}` } });
    const view = (await res.json()) as Record<string, unknown>;
    for (const field of ['type', 'uiUrl', 'createdBy', 'webServerCpu']) expect(view, field).not.toHaveProperty(field);
    expect(problemsOf(view, 'Deployment', 'view')).toEqual(['view.createdBy: required, missing', 'view.uiUrl: required, missing', 'view.webServerCpu: required, missing']);
  });
});
