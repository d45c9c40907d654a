/**
 * A faithful fake of the Astro API v1 (the endpoints deploys use) and of the Azure block-blob
 * endpoint behind `dagsUploadUrl`, served over real HTTP on 127.0.0.1.
 *
 * It is strict where the real API is: unknown paths, missing or foreign tokens and malformed bodies
 * get the real error shapes, so an SDK bug fails a test instead of a production deploy.
 *
 * Where the API's behaviour is not documented the fake guesses, and says so:
 * - the update endpoint's handling of omitted settings (omitted `contactEmails`, `description`,
 *   `scalingSpec` cleared; omitted `workerQueues` keep a default queue; see fake-update.ts);
 * - a `DAG_ONLY` deploy reports the image tag the deployment runs, and a deploy with no image tag
 *   leaves `imageTag` out ("appears only if specified");
 * - a `BUNDLE` deploy is answered with `type: 'BUNDLE'`, which v1's `DeployType` lacks (v1alpha1's
 *   has it), so a strict client must take a type it does not know; like `dagsUploadUrl`, its
 *   `bundleUploadUrl` comes only with DAG deploys on (the API docs require `bundleTarballVersion`
 *   at finalize only then, and the fake does too);
 * - list endpoints honour `limit` up to `maxPageSize` (no cap by default);
 * - a Workspace token (`workspaceId:` permission) reaches the deployments of its workspaces and a
 *   Deployment token (`deploymentId:`) its deployments only: anything else about a deployment is
 *   refused with 403 and the standard error body, and the deployment list shows only what the
 *   token reaches (`organizations` and `deployment-options` answer any token of the organization).
 * Every answer carries the fields the v1 contract marks required, with the contract's types
 * (test/client/fake-contract.test.ts checks each schema). Deployment fields can be left out of the
 * view (`omitFromView`, or a `spec` key set to `undefined`), e.g. a deployment without `type`,
 * which the spec allows.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './loopback.js';
import { randomUUID } from 'node:crypto';
import { applyFault, dropConnection, FaultInjector, readRequestBody, type FaultAction, type FaultRule, type ProceedOptions } from './faults.js';
import { createFakeBlobService, type FakeBlobService } from './fake-blob.js';
import {
  deployImageTag,
  fakeId,
  newDeployment,
  type FakeDeploy,
  type FakeDeployment,
  type FakeDeploymentInit,
  type FakeImportError,
  type RolloutBehaviour,
} from './fake-state.js';
import { airflowProblem, airflowRouteOf, importErrorsAnswer, type AirflowRoute } from './fake-airflow.js';
import { TestTokenMinter, type TestTokenOptions } from './tokens.js';
import { createApiHandlers, HttpProblem, matchApiRoute, parseJsonObject, type RouteMatch } from './fake-api-routes.js';

/** The claims of a token the fake signed. */
type TokenClaims = NonNullable<ReturnType<TestTokenMinter['verify']>>;

/** Options of {@link createFakeAstro}. */
export interface FakeAstroOptions {
  /** @default a generated id */
  organizationId?: string;
  /** Default workspace of added deployments. @default a generated id */
  workspaceId?: string;
  /** Deployments to start with. @default none */
  deployments?: FakeDeploymentInit[];
  /** Delay between finalize and the deployment reporting the new version, in ms. @default 100 */
  rolloutDelayMs?: number;
  /** Registry host (and port) used in `imageRepository`. @default 'images.astronomer.cloud' */
  imageRegistry?: string;
  /** `runtimeReleases[].version` of deployment-options. @default a realistic list of Airflow 2 and 3 runtimes */
  runtimeReleases?: string[];
  /** Organization product (`HOSTED` or `HYBRID`). @default 'HOSTED' */
  product?: 'HOSTED' | 'HYBRID';
  /**
   * Largest page the list endpoints return, whatever `limit` asks for (a server may cap it; the
   * real cap is not documented). @default no cap
   */
  maxPageSize?: number;
}

/** One request the fake received. Authorization headers are never recorded. */
export interface RecordedRequest {
  route: string;
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  /** Response status (0 when a fault cut the connection). */
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body of API calls. */
  body?: unknown;
  /** Body size in bytes. */
  bodyBytes: number;
  fault?: FaultAction['kind'];
  /** Client port of the connection that carried it: requests with the same port shared a connection. */
  remotePort?: number;
}

/** A running fake. */
export interface FakeAstro {
  /** API base URL to pass as `baseUrl` (ends in `/v1`). */
  readonly baseUrl: string;
  /** Server origin, `http://127.0.0.1:<port>`. */
  readonly origin: string;
  readonly organizationId: string;
  readonly workspaceId: string;
  /** A valid Organization API token for this fake. */
  readonly token: string;
  /**
   * Mint another token (workspace, deployment, expired, non-API ...). A Workspace or Deployment
   * token reaches only its workspace's deployments, or its deployment (403 beyond them).
   */
  mintToken(options?: TestTokenOptions): string;
  /** Add a deployment; returns its live state (mutations are visible to the API). */
  addDeployment(init?: FakeDeploymentInit): FakeDeployment;
  /** Live state of a deployment. Throws for unknown ids. */
  deployment(id: string): FakeDeployment;
  /** Deploy records of a deployment, oldest first. */
  deploys(deploymentId: string): FakeDeploy[];
  /** Set how the next rollouts of a deployment behave. */
  setRollout(deploymentId: string, behaviour: RolloutBehaviour): void;
  /**
   * Set the import errors the deployment's Airflow REST API reports (its `webServerAirflowApiUrl`,
   * served by this fake: `/api/v1/importErrors` on Airflow 2, `/api/v2/importErrors` on Airflow 3).
   * Filenames are relative to the dags folder; an error without `timestamp` gets the current time.
   */
  setImportErrors(deploymentId: string, errors: FakeImportError[]): void;
  /**
   * Add a deploy record to a deployment's history without running a deploy (a past deploy, say
   * one older than the 90 days Astro keeps for rollbacks). Returns its live state.
   */
  addDeploy(deploymentId: string, init: FakeDeployInit): FakeDeploy;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Requests of one route. */
  requestsFor(route: string): RecordedRequest[];
  /** Fault rules, by route name (see {@link FAKE_ROUTES}) or RegExp. */
  readonly faults: FaultInjector;
  /** Shorthand for `faults.add(...)`. */
  fail(rule: FaultRule): () => void;
  /** The Azure block-blob endpoint behind `dagsUploadUrl`. */
  readonly blob: FakeBlobService;
  /**
   * Stop the server, all pending rollouts and the faults still waiting (`delay`, `actLate`): their
   * timers are cleared, and nothing is acted on after close.
   */
  close(): Promise<void>;
}

/** A past deploy for {@link FakeAstro.addDeploy}. */
export interface FakeDeployInit {
  /** @default a generated id */
  id?: string;
  /** @default 'IMAGE_AND_DAG' */
  type?: FakeDeploy['type'];
  /** @default 'DEPLOYED' */
  status?: FakeDeploy['status'];
  /** @default '' */
  description?: string;
  /** @default a generated `deploy-...` tag (image deploys), the deployment's tag (DAG-only) */
  imageTag?: string;
  dagTarballVersion?: string;
  /** ISO time. @default now */
  createdAt?: string;
}

/** Route names used in the request log and for fault rules. */
export const FAKE_ROUTES = [
  'organizations.list',
  'deployments.list',
  'deployments.get',
  'deployments.update',
  'deploymentOptions.get',
  'deploys.create',
  'deploys.list',
  'deploys.get',
  'deploys.finalize',
  'deploys.rollback',
  'airflow.importErrors',
  'blob.putBlob',
  'blob.putBlock',
  'blob.putBlockList',
  'blob.getBlockList',
  'blob.getBlob',
  'blob.other',
] as const;

const DEFAULT_RUNTIMES = ['12.5.0', '12.6.0', '12.7.1', '13.0.0', '3.0-1', '3.0-2', '3.1-1', '3.1-2', '3.1-3'];

function queryObject(url: URL): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const all = url.searchParams.getAll(key);
    out[key] = all.length === 1 ? all[0]! : all;
  }
  return out;
}

/**
 * Start a fake Astro on 127.0.0.1 with a random port.
 *
 * @example
 * ```ts
 * const astro = await createFakeAstro({ deployments: [{ id: 'cldep1' }] });
 * const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
 * astro.fail({ route: 'deploys.finalize', action: { kind: 'status', status: 503 } });
 * ```
 */
export async function createFakeAstro(options: FakeAstroOptions = {}): Promise<FakeAstro> {
  const organizationId = options.organizationId ?? fakeId();
  const workspaceId = options.workspaceId ?? fakeId();
  const rolloutDelayMs = options.rolloutDelayMs ?? 100;
  const imageRegistry = options.imageRegistry ?? 'images.astronomer.cloud';
  const runtimeReleases = options.runtimeReleases ?? DEFAULT_RUNTIMES;
  const minter = new TestTokenMinter(organizationId);
  const blob = createFakeBlobService({ mountPath: '/blob' });
  const faults = new FaultInjector();
  const requests: RecordedRequest[] = [];
  const deployments = new Map<string, FakeDeployment>();
  const deploys = new Map<string, FakeDeploy[]>();
  const timers = new Set<NodeJS.Timeout>();
  /** Aborted by close(): faults still waiting are cancelled, and no request is acted on after it. */
  const closing = new AbortController();
  let tagCounter = 0;
  let origin = '';

  const addDeployment = (init: FakeDeploymentInit = {}) => {
    const d = newDeployment(init, organizationId, workspaceId, imageRegistry);
    deployments.set(d.id, d);
    deploys.set(d.id, []);
    return d;
  };
  for (const init of options.deployments ?? []) addDeployment(init);

  const authenticate = (req: IncomingMessage, org: string | undefined) => {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    if (!match) throw new HttpProblem(401, 'Unauthorized: missing bearer token');
    const claims = minter.verify(match[1]!);
    if (!claims) throw new HttpProblem(401, 'Unauthorized: invalid token');
    if (claims.exp * 1000 <= Date.now()) throw new HttpProblem(401, 'Unauthorized: token has expired');
    // Tokens without permissions stand for user sessions, which belong to the fake's organization.
    const userSession = claims.permissions.length === 0;
    if (org !== undefined && !userSession && org !== organizationId) {
      throw new HttpProblem(403, `Forbidden: token has no access to organization ${org}`);
    }
    if (org !== undefined && !userSession && !claims.permissions.includes(`organizationId:${org}`)) {
      throw new HttpProblem(403, `Forbidden: token has no access to organization ${org}`);
    }
    return claims;
  };

  /**
   * Whether a token reaches deployment `id` (`d` when it exists): a Deployment token (a
   * `deploymentId:` permission) its deployments only, a Workspace token (`workspaceId:`) the
   * deployments of its workspaces, an Organization token or a user session all of them. A
   * workspace token asking for a deployment that does not exist gets the 404 of any token.
   */
  const reaches = (claims: TokenClaims, id: string, d: FakeDeployment | undefined): boolean => {
    const granted = (kind: string) => claims.permissions.filter((p) => p.startsWith(`${kind}:`)).map((p) => p.slice(kind.length + 1));
    const deploymentIds = granted('deploymentId');
    if (deploymentIds.length) return deploymentIds.includes(id);
    const workspaceIds = granted('workspaceId');
    if (workspaceIds.length) return !d || workspaceIds.includes(d.workspaceId);
    return true;
  };

  /** The API's 403 for a token that does not reach deployment `id` (a guess: the API does not document it). */
  const checkReach = (claims: TokenClaims, id: string) => {
    if (!reaches(claims, id, deployments.get(id))) throw new HttpProblem(403, `Forbidden: token has no access to deployment ${id}`);
  };

  const scheduleRollout = (d: FakeDeployment, deploy: FakeDeploy, newImageTag: string | undefined, dagVersion: string | undefined) => {
    const behaviour = d.rollout;
    d.status = 'DEPLOYING';
    delete d.statusReason;
    if (dagVersion !== undefined) d.desiredDagTarballVersion = dagVersion;
    if (behaviour.outcome === 'stuck') return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      const now = new Date().toISOString();
      if (behaviour.outcome === 'failed') {
        deploy.status = 'FAILED';
        d.status = 'UNHEALTHY';
        d.statusReason = behaviour.statusReason ?? 'The deploy failed to roll out';
      } else {
        deploy.status = 'DEPLOYED';
        if (dagVersion !== undefined) d.dagTarballVersion = dagVersion;
        if (newImageTag !== undefined) d.imageTag = newImageTag;
        d.status = 'HEALTHY';
      }
      deploy.updatedAt = now;
      d.updatedAt = now;
    }, behaviour.delayMs ?? rolloutDelayMs);
    timer.unref();
    timers.add(timer);
  };

  const handlers = createApiHandlers({
    organizationId,
    product: options.product ?? 'HOSTED',
    maxPageSize: options.maxPageSize ?? Infinity,
    runtimeReleases,
    deployments,
    deploys,
    blob,
    origin: () => origin,
    nextImageTag: () => deployImageTag(++tagCounter),
    scheduleRollout,
  });

  /** The fake Airflow API of a deployment: bearer token of its organization, then the import errors. */
  const handleAirflow = async (req: IncomingMessage, res: ServerResponse, url: URL, target: AirflowRoute, record: RecordedRequest, proceed: ProceedOptions) => {
    await readRequestBody(req);
    let status: number;
    let payload: unknown;
    const d = [...deployments.values()].find((x) => x.namespace === target.namespace);
    try {
      const claims = authenticate(req, undefined);
      if (claims.permissions.length > 0 && d && !claims.permissions.includes(`organizationId:${d.organizationId}`)) {
        throw new HttpProblem(403, 'Forbidden: token has no access to this deployment');
      }
      if (d) checkReach(claims, d.id);
      if (!d || target.route !== 'airflow.importErrors' || !target.version) throw new HttpProblem(404, `No route for ${req.method} ${url.pathname}`);
      ({ status, body: payload } = importErrorsAnswer(d, target.version, url));
    } catch (error) {
      if (!(error instanceof HttpProblem)) throw error;
      status = error.status;
      payload = airflowProblem(error.status, error.status === 401 ? 'Unauthorized' : error.status === 403 ? 'Forbidden' : 'Not Found', error.message);
    }
    record.status = proceed.dropResponse ? 0 : status;
    sendJson(res, status, payload, proceed.dropResponse === true, req);
  };

  const sendJson = (res: ServerResponse, status: number, payload: unknown, drop: boolean, req: IncomingMessage) => {
    if (drop) return dropConnection(req);
    // A fault answered already (`actLate` with `answer`): the state changed, nothing more is sent.
    if (res.writableEnded) return;
    const text = JSON.stringify(payload);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'x-request-id': randomUUID(),
    });
    res.end(text);
  };

  const errorBody = (status: number, message: string, fieldErrors?: unknown[]) => ({
    message,
    requestId: randomUUID(),
    statusCode: status,
    ...(fieldErrors ? { fieldErrors } : {}),
  });

  const recordHeaders = (req: IncomingMessage) => {
    const { authorization: _auth, ...rest } = req.headers;
    return rest;
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, url: URL, match: RouteMatch, record: RecordedRequest, proceed: ProceedOptions) => {
    const raw = proceed.body ?? (await readRequestBody(req, proceed.throttleBytesPerSecond));
    record.bodyBytes = raw.length;
    if (closing.signal.aborted) return dropConnection(req);
    try {
      const claims = authenticate(req, match.params.org);
      if (match.params.dep !== undefined) checkReach(claims, match.params.dep);
      const body = req.method === 'POST' ? parseJsonObject(raw) : {};
      if (req.method === 'POST') record.body = body;
      const payload = handlers[match.route]!(match.params, url, body, (d) => reaches(claims, d.id, d));
      record.status = proceed.dropResponse ? 0 : 200;
      // Astro answers 200 (not 201) to create and finalize; the CLI treats anything else as an error.
      sendJson(res, 200, payload, proceed.dropResponse === true, req);
    } catch (error) {
      if (!(error instanceof HttpProblem)) throw error;
      record.status = proceed.dropResponse ? 0 : error.status;
      sendJson(res, error.status, errorBody(error.status, error.message, error.fieldErrors), proceed.dropResponse === true, req);
    }
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', origin);
    const method = req.method ?? 'GET';
    let route: string;
    let apiMatch: RouteMatch | undefined;
    let notAllowed: string[] | undefined;
    let airflowTarget: AirflowRoute | undefined;
    if (url.pathname.startsWith('/blob/')) {
      route = blob.routeOf(method, url);
    } else if (url.pathname.startsWith('/airflow/')) {
      airflowTarget = airflowRouteOf(method, url.pathname);
      route = airflowTarget.route;
    } else if (url.pathname === '/v1' || url.pathname.startsWith('/v1/')) {
      const m = matchApiRoute(method, url.pathname.slice(3));
      if (m && 'route' in m) {
        apiMatch = m;
        route = m.route;
      } else {
        route = 'unknown';
        notAllowed = m?.allow;
      }
    } else {
      route = 'unknown';
    }
    const record: RecordedRequest = {
      route,
      method,
      path: url.pathname,
      query: queryObject(url),
      status: 0,
      headers: recordHeaders(req),
      bodyBytes: 0,
      ...(req.socket.remotePort !== undefined ? { remotePort: req.socket.remotePort } : {}),
    };
    requests.push(record);

    const proceed = async (p: ProceedOptions) => {
      if (closing.signal.aborted) return dropConnection(req);
      if (route.startsWith('blob.')) {
        res.on('finish', () => (record.status = res.statusCode));
        await blob.handle(req, res, url, p);
        return;
      }
      if (apiMatch) return handleApi(req, res, url, apiMatch, record, p);
      if (airflowTarget) return handleAirflow(req, res, url, airflowTarget, record, p);
      await readRequestBody(req);
      const status = notAllowed ? 405 : 404;
      record.status = status;
      sendJson(res, status, errorBody(status, notAllowed ? `Method ${method} not allowed` : `No route for ${method} ${url.pathname}`), false, req);
    };

    const fault = faults.match(route, method, `${url.pathname}${url.search}`);
    if (fault) record.fault = fault.kind;
    const work = fault ? applyFault(fault, req, res, proceed, closing.signal).then(() => {
      if (fault.kind === 'status') record.status = fault.status;
      if (fault.kind === 'actLate' && fault.answer !== undefined) record.status = fault.answer;
    }) : proceed({});
    work.catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        record.status = 500;
        sendJson(res, 500, errorBody(500, `Fake Astro internal error: ${(error as Error).message}`), false, req);
      } else {
        res.destroy();
      }
    });
  });
  const listener = await listenOnLoopback(server);
  origin = listener.origin;

  const token = minter.mint();
  return {
    baseUrl: `${origin}/v1`,
    origin,
    organizationId,
    workspaceId,
    token,
    mintToken: (o) => minter.mint(o),
    addDeployment,
    deployment: (id) => {
      const d = deployments.get(id);
      if (!d) throw new Error(`fake Astro: no deployment ${id}`);
      return d;
    },
    deploys: (id) => [...(deploys.get(id) ?? [])],
    setRollout: (id, behaviour) => {
      const d = deployments.get(id);
      if (!d) throw new Error(`fake Astro: no deployment ${id}`);
      d.rollout = { ...behaviour };
    },
    setImportErrors: (id, errors) => {
      const d = deployments.get(id);
      if (!d) throw new Error(`fake Astro: no deployment ${id}`);
      const now = new Date().toISOString();
      d.importErrors = errors.map((e) => ({ ...e, timestamp: e.timestamp ?? now }));
    },
    addDeploy: (id, init) => {
      const d = deployments.get(id);
      if (!d) throw new Error(`fake Astro: no deployment ${id}`);
      const type = init.type ?? 'IMAGE_AND_DAG';
      const createdAt = init.createdAt ?? new Date().toISOString();
      const deploy: FakeDeploy = {
        id: init.id ?? fakeId(),
        deploymentId: id,
        type,
        status: init.status ?? 'DEPLOYED',
        description: init.description ?? '',
        imageRepository: d.imageRepository,
        imageTag: init.imageTag ?? (type === 'DAG_ONLY' || type === 'BUNDLE' ? d.imageTag : deployImageTag(++tagCounter)),
        isDagDeployEnabled: d.isDagDeployEnabled,
        ...(init.dagTarballVersion !== undefined ? { dagTarballVersion: init.dagTarballVersion } : {}),
        finalizeCount: init.status === 'INITIALIZED' ? 0 : 1,
        createdAt,
        updatedAt: createdAt,
      };
      deploys.get(id)!.push(deploy);
      return deploy;
    },
    requests,
    requestsFor: (route) => requests.filter((r) => r.route === route),
    faults,
    fail: (rule) => faults.add(rule),
    blob,
    close: async () => {
      closing.abort();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await listener.close();
    },
  };
}
