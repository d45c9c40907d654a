/**
 * The Astro API v1 routes of the fake: which request is which route, and what each answers. The
 * state they act on (deployments, deploys, the blob service, rollouts) belongs to the fake
 * (fake-astro.ts), which hands it over as a {@link FakeApiWorld}.
 */
import type { FakeBlobService } from './fake-blob.js';
import { deployView, deploymentView, FAKE_SCHEDULER_MACHINES, fakeId, type FakeDeploy, type FakeDeployment } from './fake-state.js';
import { applyUpdateBody } from './fake-update.js';

/** An error answer of the fake API: its status, message and field errors. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fieldErrors?: Array<{ code: string; field: string; message: string }>,
  ) {
    super(message);
  }
}

/** How long Astro keeps the image and DAGs of a deploy for rollbacks: 90 days. */
const ROLLBACK_WINDOW_MS = 90 * 24 * 3600 * 1000;

const DEPLOY_TYPES = new Set(['IMAGE_AND_DAG', 'IMAGE_ONLY', 'DAG_ONLY', 'BUNDLE']);

/** A request matched to a route: its name and the path's parameters. */
export interface RouteMatch {
  route: string;
  params: Record<string, string>;
}

/** Map method + path (below /v1) to a route name and its parameters. */
export function matchApiRoute(method: string, path: string): RouteMatch | { allow: string[] } | undefined {
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  const table: Array<[string, string[], string]> = [
    ['GET', ['organizations'], 'organizations.list'],
    ['GET', ['organizations', ':org', 'deployments'], 'deployments.list'],
    ['GET', ['organizations', ':org', 'deployments', ':dep'], 'deployments.get'],
    ['POST', ['organizations', ':org', 'deployments', ':dep'], 'deployments.update'],
    ['GET', ['organizations', ':org', 'deployment-options'], 'deploymentOptions.get'],
    ['POST', ['organizations', ':org', 'deployments', ':dep', 'deploys'], 'deploys.create'],
    ['GET', ['organizations', ':org', 'deployments', ':dep', 'deploys'], 'deploys.list'],
    ['GET', ['organizations', ':org', 'deployments', ':dep', 'deploys', ':deploy'], 'deploys.get'],
    ['POST', ['organizations', ':org', 'deployments', ':dep', 'deploys', ':deploy', 'finalize'], 'deploys.finalize'],
    ['POST', ['organizations', ':org', 'deployments', ':dep', 'deploys', ':deploy', 'rollback'], 'deploys.rollback'],
  ];
  const allow: string[] = [];
  for (const [m, pattern, route] of table) {
    if (pattern.length !== seg.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    pattern.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = seg[i]!;
      else if (p !== seg[i]) ok = false;
    });
    if (!ok) continue;
    if (m === method) return { route, params };
    allow.push(m);
  }
  return allow.length ? { allow } : undefined;
}

/** A JSON object body, or the API's 400. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpProblem(400, 'Invalid request body: malformed JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpProblem(400, 'Invalid request body: expected an object');
  return parsed as Record<string, unknown>;
}

/**
 * The v1 `CreateDeployGitRequest` rules: `provider` GITHUB or GENERIC and `commitSha` required;
 * GITHUB needs `account` and `repo` and no `remoteUrl`; GENERIC needs `remoteUrl` and no `repo`.
 */
function checkDeployGit(git: unknown): void {
  const bad = (field: string, message: string) => new HttpProblem(400, 'Invalid request', [{ code: 'invalid', field: `git.${field}`, message }]);
  if (!git || typeof git !== 'object' || Array.isArray(git)) throw bad('', 'git must be an object');
  const g = git as Record<string, unknown>;
  for (const [k, v] of Object.entries(g)) if (v !== undefined && typeof v !== 'string') throw bad(k, `${k} must be a string`);
  if (g.provider !== 'GITHUB' && g.provider !== 'GENERIC') throw bad('provider', 'provider must be one of GITHUB, GENERIC');
  if (!g.commitSha) throw bad('commitSha', 'commitSha is required');
  if (g.provider === 'GITHUB') {
    if (!g.account || !g.repo) throw bad(g.account ? 'repo' : 'account', 'account and repo are required for the GITHUB provider');
    if (g.remoteUrl) throw bad('remoteUrl', 'remoteUrl must be empty for the GITHUB provider');
  } else {
    if (!g.remoteUrl) throw bad('remoteUrl', 'remoteUrl is required for the GENERIC provider');
    if (g.repo) throw bad('repo', 'repo must be empty for the GENERIC provider');
  }
}

/** What the routes act on: the fake's state and the few things only the fake can do. */
export interface FakeApiWorld {
  organizationId: string;
  product: 'HOSTED' | 'HYBRID';
  /** Largest page a list answers (no cap: Infinity). */
  maxPageSize: number;
  runtimeReleases: readonly string[];
  deployments: Map<string, FakeDeployment>;
  deploys: Map<string, FakeDeploy[]>;
  blob: FakeBlobService;
  /** The fake's origin, known once it listens. */
  origin(): string;
  /** A new image tag for an image deploy. */
  nextImageTag(): string;
  /** Roll a finalized (or rollback) deploy out, as the deployment's rollout behaviour says. */
  scheduleRollout(d: FakeDeployment, deploy: FakeDeploy, newImageTag: string | undefined, dagVersion: string | undefined): void;
}

/**
 * A route's handler: path parameters, the URL, the JSON body and which deployments the request's
 * token reaches in; the answer's body out (or an {@link HttpProblem}).
 */
export type ApiHandler = (p: Record<string, string>, url: URL, body: Record<string, unknown>, reaches: (d: FakeDeployment) => boolean) => unknown;

/** The deployment `id` of organization `org`, or the API's 404. */
export function findDeployment(w: FakeApiWorld, org: string, id: string): FakeDeployment {
  const d = w.deployments.get(id);
  if (!d || d.organizationId !== org) throw new HttpProblem(404, `Deployment ${id} not found`);
  return d;
}

/** Astro Hosted's worker machines: name, size, and the concurrency a queue of them may set. */
const WORKER_MACHINES: ReadonlyArray<[name: string, cpu: number, memoryGi: number]> = [
  ['A5', 1, 2],
  ['A10', 2, 4],
  ['A20', 4, 8],
  ['A40', 8, 16],
  ['A60', 12, 24],
  ['A120', 24, 48],
  ['A160', 32, 64],
];

/**
 * `GET .../deployment-options` (`DeploymentOptions`): the runtime releases, and Astro Hosted's
 * executors, quotas, machines and queue limits. A runtime release needs an Airflow database
 * migration when it is the first in the list with its Airflow version (`3.1-1`), never a Stellar one.
 */
function deploymentOptionsView(runtimeReleases: readonly string[]): Record<string, unknown> {
  const range = (floor: string, def: string, ceiling: string) => ({ floor, default: def, ceiling });
  const counts = (floor: number, def: number, ceiling: number) => ({ floor, default: def, ceiling });
  const airflowVersions = new Set<string>();
  return {
    executors: ['CELERY', 'KUBERNETES', 'ASTRO'],
    resourceQuotas: {
      defaultPodSize: { cpu: range('0.25', '1', '6'), memory: range('0.5Gi', '2Gi', '12Gi') },
      resourceQuota: { cpu: range('2', '10', '1600'), memory: range('4Gi', '20Gi', '3200Gi') },
    },
    runtimeReleases: runtimeReleases.map((version) => {
      const airflowVersion = /^\d+\.\d+-\d+/.test(version) ? `${version.split('-')[0]}.0` : '2.10.5';
      const newAirflow = !airflowVersions.has(airflowVersion);
      airflowVersions.add(airflowVersion);
      return { version, airflowVersion, channel: 'STABLE', releaseDate: '2026-01-01T00:00:00Z', airflowDatabaseMigration: newAirflow, stellarDatabaseMigration: false };
    }),
    schedulerMachines: FAKE_SCHEDULER_MACHINES.map((m) => ({ name: m.name, spec: { ...m.spec } })),
    workerMachines: WORKER_MACHINES.map(([name, cpu, memoryGi]) => ({
      name,
      spec: { cpu: String(cpu), memory: `${memoryGi}Gi`, concurrency: cpu * 5 },
      concurrency: counts(1, cpu * 5, cpu * 15),
    })),
    workerQueues: { maxWorkers: counts(1, 10, 30), minWorkers: counts(0, 1, 30), workerConcurrency: counts(1, 5, 256) },
  };
}

/** The handlers of the v1 routes, by route name. */
export function createApiHandlers(w: FakeApiWorld): Record<string, ApiHandler> {
return {
  'organizations.list': () => ({
    organizations: [{ id: w.organizationId, name: 'Fake Org', product: w.product }],
    totalCount: 1,
    limit: 100,
    offset: 0,
  }),
  // A Workspace or Deployment token lists the deployments it reaches (a guess: the API does not document it).
  'deployments.list': (p, url, _body, reaches) => {
    const limit = Math.min(Number(url.searchParams.get('limit') ?? 20), w.maxPageSize);
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const ws = url.searchParams.getAll('workspaceIds');
    const names = url.searchParams.getAll('names');
    const ids = url.searchParams.getAll('deploymentIds');
    const all = [...w.deployments.values()].filter(
      (d) =>
        d.organizationId === p.org &&
        reaches(d) &&
        (ws.length === 0 || ws.includes(d.workspaceId)) &&
        (names.length === 0 || names.includes(d.name)) &&
        (ids.length === 0 || ids.includes(d.id)),
    );
    return { deployments: all.slice(offset, offset + limit).map((d) => deploymentView(d, w.origin())), totalCount: all.length, limit, offset };
  },
  'deployments.get': (p) => deploymentView(findDeployment(w, p.org!, p.dep!), w.origin()),
  'deployments.update': (p, _url, body) => {
    const d = findDeployment(w, p.org!, p.dep!);
    const problems = applyUpdateBody(d, body);
    if (problems.length) throw new HttpProblem(400, 'Invalid request: update body failed validation', problems);
    d.updatedAt = new Date().toISOString();
    return deploymentView(d, w.origin());
  },
  'deploymentOptions.get': () => deploymentOptionsView(w.runtimeReleases),
  'deploys.create': (p, _url, body) => {
    const d = findDeployment(w, p.org!, p.dep!);
    const type = body.type;
    if (typeof type !== 'string' || !DEPLOY_TYPES.has(type)) {
      throw new HttpProblem(400, 'Invalid request', [{ code: 'invalid', field: 'type', message: 'type must be one of IMAGE_AND_DAG, IMAGE_ONLY, DAG_ONLY, BUNDLE' }]);
    }
    if (body.description !== undefined && (typeof body.description !== 'string' || body.description.length > 500)) {
      throw new HttpProblem(400, 'Invalid request', [{ code: 'invalid', field: 'description', message: 'description must be a string of at most 500 characters' }]);
    }
    if (body.git !== undefined) checkDeployGit(body.git);
    if (type === 'BUNDLE' && (typeof body.bundleMountPath !== 'string' || typeof body.bundleType !== 'string')) {
      throw new HttpProblem(400, 'Invalid request', [{ code: 'required', field: 'bundleMountPath', message: 'BUNDLE deploys need bundleMountPath and bundleType' }]);
    }
    const now = new Date().toISOString();
    const id = fakeId();
    const deploy: FakeDeploy = {
      id,
      deploymentId: d.id,
      type: type as FakeDeploy['type'],
      status: 'INITIALIZED',
      description: typeof body.description === 'string' ? body.description : '',
      imageRepository: d.imageRepository,
      // DAG-only deploys report the image that is already running.
      imageTag: type === 'DAG_ONLY' || type === 'BUNDLE' ? d.imageTag : w.nextImageTag(),
      isDagDeployEnabled: d.isDagDeployEnabled,
      finalizeCount: 0,
      createdAt: now,
      updatedAt: now,
    };
    if (body.git && typeof body.git === 'object') deploy.git = body.git as Record<string, unknown>;
    if (d.isDagDeployEnabled && type !== 'BUNDLE' && !d.remoteExecution) {
      deploy.dagsUploadUrl = w.blob.sasUrl(w.origin(), 'dags', `${w.organizationId}/${d.id}`, { permissions: 'cw', expiresInMs: 3_600_000 });
    }
    if (type === 'BUNDLE' && d.isDagDeployEnabled) deploy.bundleUploadUrl = w.blob.sasUrl(w.origin(), 'bundles', `${w.organizationId}/${d.id}/${id}`, { permissions: 'cw', expiresInMs: 3_600_000 });
    w.deploys.get(d.id)!.push(deploy);
    return deployView(deploy);
  },
  'deploys.list': (p, url) => {
    findDeployment(w, p.org!, p.dep!);
    const limit = Math.min(Number(url.searchParams.get('limit') ?? 20), w.maxPageSize);
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const all = [...w.deploys.get(p.dep!)!].reverse();
    return { deploys: all.slice(offset, offset + limit).map(deployView), totalCount: all.length, limit, offset };
  },
  'deploys.get': (p) => {
    findDeployment(w, p.org!, p.dep!);
    const deploy = w.deploys.get(p.dep!)!.find((x) => x.id === p.deploy);
    if (!deploy) throw new HttpProblem(404, `Deploy ${p.deploy} not found`);
    return deployView(deploy);
  },
  'deploys.finalize': (p, _url, body) => {
    const d = findDeployment(w, p.org!, p.dep!);
    const deploy = w.deploys.get(d.id)!.find((x) => x.id === p.deploy);
    if (!deploy) throw new HttpProblem(404, `Deploy ${p.deploy} not found`);
    if (deploy.finalizeCount > 0) throw new HttpProblem(400, `Deploy ${deploy.id} has already been finalized`);
    const carriesDags = deploy.type === 'IMAGE_AND_DAG' || deploy.type === 'DAG_ONLY';
    let dagVersion: string | undefined;
    if (deploy.isDagDeployEnabled && carriesDags) {
      if (typeof body.dagTarballVersion !== 'string') {
        throw new HttpProblem(400, 'Invalid request', [{ code: 'required', field: 'dagTarballVersion', message: 'dagTarballVersion is required when DAG deploys are enabled' }]);
      }
      dagVersion = body.dagTarballVersion;
      if (dagVersion !== '') {
        const known = w.blob.versions('dags', `${w.organizationId}/${d.id}`).some((v) => v.versionId === dagVersion);
        if (!known) throw new HttpProblem(400, `dagTarballVersion ${dagVersion} does not match an uploaded DAG bundle`);
      }
    } else if (body.dagTarballVersion !== undefined && body.dagTarballVersion !== '' && !deploy.isDagDeployEnabled) {
      throw new HttpProblem(400, 'DAG deploys are not enabled for this deployment; dagTarballVersion must not be set');
    }
    // As for DAGs: the API docs require bundleTarballVersion when DAG deploys are enabled and the
    // type is BUNDLE; a deployment without DAG deploys takes no bundle (no bundleUploadUrl).
    if (deploy.type === 'BUNDLE' && deploy.isDagDeployEnabled) {
      if (typeof body.bundleTarballVersion !== 'string') {
        throw new HttpProblem(400, 'Invalid request', [{ code: 'required', field: 'bundleTarballVersion', message: 'bundleTarballVersion is required for BUNDLE deploys when DAG deploys are enabled' }]);
      }
      deploy.bundleTarballVersion = body.bundleTarballVersion;
    } else if (deploy.type === 'BUNDLE' && body.bundleTarballVersion !== undefined && body.bundleTarballVersion !== '') {
      throw new HttpProblem(400, 'DAG deploys are not enabled for this deployment; bundleTarballVersion must not be set');
    }
    deploy.finalizeCount += 1;
    if (dagVersion !== undefined) deploy.dagTarballVersion = dagVersion;
    deploy.updatedAt = new Date().toISOString();
    const imageTag = deploy.type === 'IMAGE_ONLY' || deploy.type === 'IMAGE_AND_DAG' ? deploy.imageTag : undefined;
    w.scheduleRollout(d, deploy, imageTag, dagVersion);
    return deployView(deploy);
  },
  // Guesses where the API is not documented: the answer is a new deploy record (type, image tag
  // and DAG version of the target, `rollbackFromId` naming the target) that rolls out like a
  // finalized deploy (the description is stored as sent); a target that never deployed or is older than the 90 days Astro keeps
  // images and DAGs for is refused with 400.
  'deploys.rollback': (p, _url, body) => {
    const d = findDeployment(w, p.org!, p.dep!);
    const target = w.deploys.get(d.id)!.find((x) => x.id === p.deploy);
    if (!target) throw new HttpProblem(404, `Deploy ${p.deploy} not found`);
    if (body.description !== undefined && (typeof body.description !== 'string' || body.description.length > 500)) {
      throw new HttpProblem(400, 'Invalid request', [{ code: 'invalid', field: 'description', message: 'description must be a string of at most 500 characters' }]);
    }
    if (target.status !== 'DEPLOYED') throw new HttpProblem(400, `Deploy ${target.id} was never deployed (status ${target.status}); it cannot be rolled back to`);
    if (Date.now() - Date.parse(target.createdAt) > ROLLBACK_WINDOW_MS) {
      throw new HttpProblem(400, `Deploy ${target.id} is older than 90 days: its image and DAGs are no longer kept`);
    }
    const now = new Date().toISOString();
    const deploy: FakeDeploy = {
      id: fakeId(),
      deploymentId: d.id,
      type: target.type,
      status: 'INITIALIZED',
      description: typeof body.description === 'string' ? body.description : '',
      imageRepository: d.imageRepository,
      imageTag: target.imageTag,
      isDagDeployEnabled: d.isDagDeployEnabled,
      ...(target.dagTarballVersion !== undefined ? { dagTarballVersion: target.dagTarballVersion } : {}),
      rollbackFromId: target.id,
      finalizeCount: 0,
      createdAt: now,
      updatedAt: now,
    };
    w.deploys.get(d.id)!.push(deploy);
    // The deployment runs again what it ran after the target: its image tag (a DAG-only deploy
    // records the tag that ran then) and its DAG version (a deploy without one leaves the DAGs).
    w.scheduleRollout(d, deploy, target.imageTag || undefined, target.dagTarballVersion || undefined);
    return deployView(deploy);
  },
};
}
