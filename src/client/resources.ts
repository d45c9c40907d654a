/**
 * One typed method per Astro API v1 endpoint the deploy flows use. Paths, bodies and status
 * handling follow the Astro CLI (see the protocol notes); responses are validated by the schemas.
 */
import { inspect } from 'node:util';
import {
  deployListSchema,
  deploySchema,
  deploymentListSchema,
  deploymentOptionsSchema,
  deploymentSchema,
  type Deploy,
  type DeployList,
  type DeployType,
  type Deployment,
  type DeploymentList,
  type DeploymentOptions,
} from './schemas.js';
import { pathSegment } from './path.js';
import { findDeployment, type FindDeploymentParams } from './find-deployment.js';
import type { ApiTransport, RequestOptions } from './transport.js';

declare const API_HANDLE: unique symbol;

/**
 * What `AstroClient` hands its resources: opaque outside the SDK. Resources are reached through a
 * client (`client.deployments`, ...), never constructed by callers.
 */
export interface ApiHandle {
  readonly [API_HANDLE]: true;
}

/** The handle of `transport`, for `AstroClient` (internal). */
export function apiHandle(transport: ApiTransport): ApiHandle {
  return transport as unknown as ApiHandle;
}

/** Each resource's transport, kept out of its type and of what inspection shows. */
const transports = new WeakMap<Resource, ApiTransport>();

function transportOf(resource: Resource): ApiTransport {
  return transports.get(resource)!;
}

/**
 * Base of the resource classes. What `util.inspect` and `JSON.stringify` show of a resource is its
 * organization, never the transport (whose configuration belongs to the client).
 */
export abstract class Resource {
  constructor(
    api: ApiHandle,
    protected readonly organizationId: string,
  ) {
    transports.set(this, api as unknown as ApiTransport);
  }

  toJSON(): Record<string, unknown> {
    return { organizationId: this.organizationId };
  }

  [inspect.custom](depth: number, options: Parameters<typeof inspect>[1]): string {
    return `${this.constructor.name} ${inspect(this.toJSON(), { ...options, depth: Math.max(0, depth) })}`;
  }
}

/** Git metadata attached to a deploy (shown in the Astro UI). */
export interface DeployGitMetadata {
  provider: 'GITHUB' | 'GENERIC';
  commitSha: string;
  /** GITHUB only. */
  account?: string;
  /** GITHUB only. */
  repo?: string;
  /** GENERIC only. */
  remoteUrl?: string;
  branch?: string;
  path?: string;
  commitUrl?: string;
  authorName?: string;
  authorUsername?: string;
  authorUrl?: string;
  beforeCommitSha?: string;
}

/** Body of create-deploy. */
export interface CreateDeployParams {
  type: DeployType;
  /** Shown in the Astro UI; at most 500 characters. The CLI always sends it, possibly empty. @default '' */
  description?: string;
  git?: DeployGitMetadata;
  /** BUNDLE deploys only. */
  bundleMountPath?: string;
  /** BUNDLE deploys only, e.g. `dbt`. */
  bundleType?: string;
}

/** Body of finalize-deploy. */
export interface FinalizeDeployParams {
  /** The `x-ms-version-id` of the uploaded DAG bundle; `''` when no DAGs were uploaded. */
  dagTarballVersion?: string;
  /** BUNDLE deploys only. */
  bundleTarballVersion?: string;
}

/** Paging parameters. */
export interface PageParams {
  /** @default 100 (deploys), 1000 (deployments) */
  limit?: number;
  /** @default 0 */
  offset?: number;
}

/** Deployment endpoints. */
export class DeploymentsResource extends Resource {
  private base(): string {
    return `/organizations/${pathSegment('organizationId', this.organizationId)}/deployments`;
  }

  /** `GET /organizations/{org}/deployments/{id}`. */
  async get(deploymentId: string, options?: RequestOptions): Promise<Deployment> {
    return transportOf(this).send(
      { method: 'GET', path: `${this.base()}/${pathSegment('deploymentId', deploymentId)}`, schema: deploymentSchema, retry: 'idempotent' },
      options,
    );
  }

  /** One page of `GET /organizations/{org}/deployments`, optionally narrowed to workspaces and names. */
  async list(params: PageParams & { workspaceIds?: string[]; names?: string[] } = {}, options?: RequestOptions): Promise<DeploymentList> {
    return transportOf(this).send(
      {
        method: 'GET',
        path: this.base(),
        query: { limit: params.limit ?? 1000, offset: params.offset ?? 0, workspaceIds: params.workspaceIds, names: params.names },
        schema: deploymentListSchema,
        retry: 'idempotent',
      },
      options,
    );
  }

  /**
   * Every deployment, following pages as the CLI does: pages of 1000 asked for, the offset
   * advanced by the number of deployments each page returned (a server may return fewer than
   * asked), until `totalCount` is reached or a page comes back empty.
   */
  async listAll(params: { workspaceIds?: string[]; names?: string[] } = {}, options?: RequestOptions): Promise<Deployment[]> {
    const out: Deployment[] = [];
    const limit = 1000;
    for (let offset = 0; ; ) {
      const page = await this.list({ ...params, limit, offset }, options);
      out.push(...page.deployments);
      offset += page.deployments.length;
      const total = page.totalCount ?? out.length;
      if (page.deployments.length === 0 || out.length >= total) return out;
    }
  }

  /**
   * The one deployment named `name` (in `workspaceId`, when given), as `astro deploy
   * --deployment-name` picks it, without a prompt: the list is read (narrowed by `names`) and
   * compared exactly (case-sensitive).
   *
   * @throws DeploymentLookupError `ASTRO_DEPLOYMENT_NOT_FOUND` when none has the name,
   *   `ASTRO_DEPLOYMENT_AMBIGUOUS` when several do (each in `matches`, with its id and workspace)
   */
  async find(params: FindDeploymentParams, options?: RequestOptions): Promise<Deployment> {
    return findDeployment((p, o) => this.listAll(p, o), params, options);
  }

  /**
   * `POST /organizations/{org}/deployments/{id}` with a full update body. Prefer
   * `AstroClient.setDagDeploy`, which builds the body from the current deployment.
   */
  async update(deploymentId: string, body: Record<string, unknown>, options?: RequestOptions): Promise<Deployment> {
    return transportOf(this).send(
      {
        method: 'POST',
        path: `${this.base()}/${pathSegment('deploymentId', deploymentId)}`,
        body,
        schema: deploymentSchema,
        // Sent again only when it provably never arrived (or was rate limited): the body is the
        // whole desired state, but an update may restart every pod (astro-cli#879), so callers
        // read the deployment back after a lost answer instead (see setDagDeploy).
        retry: 'once',
      },
      options,
    );
  }
}

/** `GET /organizations/{org}/deployment-options`. */
export class DeploymentOptionsResource extends Resource {
  /** Runtime releases and other options available to the organization. */
  async get(options?: RequestOptions): Promise<DeploymentOptions> {
    return transportOf(this).send(
      {
        method: 'GET',
        path: `/organizations/${pathSegment('organizationId', this.organizationId)}/deployment-options`,
        schema: deploymentOptionsSchema,
        retry: 'idempotent',
      },
      options,
    );
  }
}

/** Deploy-record endpoints. */
export class DeploysResource extends Resource {
  private base(deploymentId: string): string {
    return `/organizations/${pathSegment('organizationId', this.organizationId)}/deployments/${pathSegment('deploymentId', deploymentId)}/deploys`;
  }

  /**
   * `POST …/deploys`: start a deploy. Never retried once the request may have reached Astro,
   * because a retry could create a second deploy.
   */
  async create(deploymentId: string, params: CreateDeployParams, options?: RequestOptions): Promise<Deploy> {
    const path = this.base(deploymentId);
    const body: Record<string, unknown> = { type: params.type, description: params.description ?? '' };
    if (params.git) body.git = params.git;
    if (params.bundleMountPath !== undefined) body.bundleMountPath = params.bundleMountPath;
    if (params.bundleType !== undefined) body.bundleType = params.bundleType;
    return transportOf(this).send(
      { method: 'POST', path, body, schema: deploySchema, retry: 'once' },
      options,
    );
  }

  /** `GET …/deploys/{deployId}`. */
  async get(deploymentId: string, deployId: string, options?: RequestOptions): Promise<Deploy> {
    return transportOf(this).send(
      { method: 'GET', path: `${this.base(deploymentId)}/${pathSegment('deployId', deployId)}`, schema: deploySchema, retry: 'idempotent' },
      options,
    );
  }

  /** One page of `GET …/deploys`. */
  async list(deploymentId: string, params: PageParams = {}, options?: RequestOptions): Promise<DeployList> {
    return transportOf(this).send(
      {
        method: 'GET',
        path: this.base(deploymentId),
        query: { limit: params.limit ?? 100, offset: params.offset ?? 0 },
        schema: deployListSchema,
        retry: 'idempotent',
      },
      options,
    );
  }

  /**
   * Every deploy record of a deployment, newest first (by `createdAt`), following pages of 100
   * until `totalCount` is reached, a page comes back empty or `max` records were read.
   */
  async listAll(deploymentId: string, params: { max?: number } = {}, options?: RequestOptions): Promise<Deploy[]> {
    const max = params.max ?? 5000;
    const out: Deploy[] = [];
    for (let offset = 0; out.length < max; ) {
      const page = await this.list(deploymentId, { limit: 100, offset }, options);
      out.push(...page.deploys);
      offset += page.deploys.length;
      if (page.deploys.length === 0 || out.length >= (page.totalCount ?? out.length)) break;
    }
    // Stable: records without a createdAt keep the API's order, after the dated ones.
    return out
      .map((d, i) => ({ d, i, t: d.createdAt ? Date.parse(d.createdAt) : Number.NEGATIVE_INFINITY }))
      .sort((a, b) => (b.t === a.t ? a.i - b.i : b.t - a.t))
      .map((x) => x.d)
      .slice(0, max);
  }

  /**
   * `POST …/deploys/{deployId}/rollback` with `{ description }`: Astro starts running that deploy's
   * image and DAGs again and answers with a new deploy record. Sent once (never retried once it
   * may have reached Astro); prefer `client.rollback`, which picks the target and reads back a
   * lost answer.
   */
  async rollback(deploymentId: string, deployId: string, params: { description?: string } = {}, options?: RequestOptions): Promise<Deploy> {
    const path = `${this.base(deploymentId)}/${pathSegment('deployId', deployId)}/rollback`;
    const body: Record<string, unknown> = {};
    if (params.description !== undefined) body.description = params.description;
    return transportOf(this).send({ method: 'POST', path, body, schema: deploySchema, retry: 'once' }, options);
  }

  /**
   * `POST …/deploys/{deployId}/finalize`. Sent once: whether a lost answer means the deploy was
   * finalized is decided by the deploy flows, which re-read the deploy before trying again.
   */
  async finalize(deploymentId: string, deployId: string, params: FinalizeDeployParams, options?: RequestOptions): Promise<Deploy> {
    const path = `${this.base(deploymentId)}/${pathSegment('deployId', deployId)}/finalize`;
    const body: Record<string, unknown> = {};
    if (params.dagTarballVersion !== undefined) body.dagTarballVersion = params.dagTarballVersion;
    if (params.bundleTarballVersion !== undefined) body.bundleTarballVersion = params.bundleTarballVersion;
    return transportOf(this).send(
      { method: 'POST', path, body, schema: deploySchema, retry: 'once' },
      options,
    );
  }
}
