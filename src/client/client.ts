/**
 * AstroClient: the typed entry point. It holds the resolved options and composes the resource
 * methods and the deploy flows; each flow lives in its own module.
 */
import { inspect } from 'node:util';
import { emitterFor, safeCall, type Emit } from '../core/emitter.js';
import { isAstroError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { redactUrl } from '../core/redact.js';
import type { ClientEvent } from './events.js';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { apiHandle, DeploymentOptionsResource, DeploymentsResource, DeploysResource } from './resources.js';
import { waitForRollout, type RolloutResult, type WaitForRolloutParams } from './rollout.js';
import { setDagDeploy, type SetDagDeployOptions, type SetDagDeployResult } from './dag-deploy.js';
import type { DeployContext } from './deploy-common.js';
import { deployImage, type DeployImageOutcome, type DeployImageParams, type DeployImageResult } from './deploy-image.js';
import { deployProject, type DeployProjectOutcome, type DeployProjectParams, type DeployProjectResult } from './deploy-project.js';
import { deployDags, type DeployDagsOutcome, type DeployDagsParams, type DeployDagsResult } from './deploy-dags.js';
import type { DeployDryRun } from './dry-run.js';
import { rollback, type RollbackParams, type RollbackResult } from './rollback.js';
import { ApiTransport, type RequestOptions } from './transport.js';
import {
  deployDagsToMany,
  deployImageToMany,
  type DeployDagsToManyParams,
  type DeployDagsToManyValue,
  type DeployImageToManyParams,
  type DeployImageToManyValue,
  type DeployManyOutcome,
} from './deploy-many.js';
import { redactRolloutSas } from './redact-results.js';
import { pathSegment } from './path.js';

/**
 * Client for deploying to Astro.
 *
 * @example
 * ```ts
 * const client = new AstroClient(); // ASTRO_API_TOKEN from the environment
 * const deployment = await client.deployments.get('cldeploymentid');
 * ```
 */
export class AstroClient {
  /** Deployment endpoints (get, list, listAll, update). */
  readonly deployments: DeploymentsResource;
  /** Deploy-record endpoints (create, get, list, finalize). */
  readonly deploys: DeploysResource;
  /** `GET /deployment-options` (runtime releases). */
  readonly deploymentOptions: DeploymentOptionsResource;
  /** The organization this client acts on. */
  readonly organizationId: string;
  /**
   * Options after defaults were applied, and the options as given. Both hold the token, so they
   * live in private fields: `util.inspect(client)` and `JSON.stringify(client)` never show them
   * (see the custom inspect and `toJSON` below).
   */
  readonly #resolved: ResolvedClientOptions;
  readonly #original: ClientOptions;

  /** Throws {@link AstroConfigError} when the token is missing, malformed or expired. */
  constructor(options: ClientOptions = {}) {
    this.#original = options;
    this.#resolved = resolveClientOptions(options);
    // It goes into every URL path: checked here, before any request (issue #15).
    pathSegment('organizationId', this.#resolved.organizationId);
    this.organizationId = this.#resolved.organizationId;
    const transport = new ApiTransport({
      baseUrl: this.#resolved.baseUrl,
      token: this.#resolved.token,
      dispatcher: this.#resolved.dispatcher,
      timeoutMs: this.#resolved.timeoutMs,
      retry: this.#resolved.retry,
      logger: this.#resolved.logger,
      userAgent: this.#resolved.userAgent,
    });
    const api = apiHandle(transport);
    this.deployments = new DeploymentsResource(api, this.organizationId);
    this.deploys = new DeploysResource(api, this.organizationId);
    this.deploymentOptions = new DeploymentOptionsResource(api, this.organizationId);
  }

  /** A new client with some options replaced; this one is left unchanged. */
  withOptions(overrides: Partial<ClientOptions>): AstroClient {
    return new AstroClient({ ...this.#original, token: this.#resolved.token, ...overrides });
  }

  /** A token-free summary: what `JSON.stringify(client)` writes. */
  toJSON(): Record<string, unknown> {
    return {
      organizationId: this.organizationId,
      baseUrl: redactUrl(this.#resolved.baseUrl),
      timeoutMs: this.#resolved.timeoutMs,
      retry: this.#resolved.retry,
      token: '[REDACTED]',
    };
  }

  /** `util.inspect(client)` / `console.log(client)`: the token-free summary. */
  [inspect.custom](depth: number, options: Parameters<typeof inspect>[1]): string {
    return `AstroClient ${inspect(this.toJSON(), { ...options, depth: Math.max(0, depth) })}`;
  }

  /**
   * Turn DAG-only deploys on or off for a deployment, as `astro deployment update --dag-deploy`
   * does: read the deployment, send its full update body with the flag changed (secret
   * environment variables kept), then re-read it to confirm. Nothing is sent when the deployment
   * is already in the wanted state.
   *
   * Enabling removes the DAGs baked into the image: new tasks are not scheduled until the first
   * DAG deploy. Disabling removes DAG-deployed DAGs until the next image deploy. Both are reported
   * as `dag-deploy:warning` events before the change.
   *
   * The update may restart every pod, so it is never sent twice when it may have applied: after a
   * lost answer the deployment is read until it shows the change (see `updateCheckTimeoutMs`).
   *
   * @throws AstroDeployError `ASTRO_DAG_DEPLOY_NOT_APPLIED` (the re-read does not show the change),
   *   `ASTRO_DAG_DEPLOY_UNKNOWN` (the update's answer was lost and the change did not show up in
   *   time; it may still apply), `ASTRO_CICD_ENFORCED`
   */
  setDagDeploy(deploymentId: string, enabled: boolean, options: SetDagDeployOptions = {}): Promise<SetDagDeployResult> {
    const { logger } = this.#resolved;
    return setDagDeploy(
      { deployments: this.deployments, claims: this.#resolved.claims, logger, retry: this.#resolved.retry },
      deploymentId,
      enabled,
      withRetryEvents(options, logger),
    );
  }

  /**
   * Deploy a dags folder as a DAG-only deploy: check the deployment (DAG deploys enabled, CI/CD
   * enforcement), bundle the folder with its `.airflowignore` rules (syntax of the deployment's
   * Airflow unless given), create a `DAG_ONLY` deploy, upload the bundle to its `dagsUploadUrl`
   * (chunked, resumable, adaptive), finalize with the blob's version and, with `wait`, wait until
   * the deployment runs it. Deploys to one deployment from this process run one after another.
   *
   * Nothing is created when the checks or the bundle fail; an incomplete or mismatched upload is
   * never finalized; a lost finalize answer is resolved by reading the deploy back, so a deploy
   * is finalized exactly once.
   *
   * `dryRun: true` resolves with `{ dryRun: true, plan }` and sends nothing but reads;
   * `skipUnchanged: true` resolves with `{ skipped: 'unchanged', ... }` when the deployment already
   * runs a bundle with this fingerprint; `enableDagDeploy: true` turns DAG deploys on first.
   */
  deployDags(params: DeployDagsParams & { dryRun: true }): Promise<DeployDryRun>;
  deployDags(params: DeployDagsParams & { dryRun?: false; skipUnchanged?: false }): Promise<DeployDagsResult>;
  deployDags(params: DeployDagsParams): Promise<DeployDagsOutcome>;
  deployDags(params: DeployDagsParams): Promise<DeployDagsOutcome> {
    return deployDags(this.deployContext(), withRequestRetryEvents(params, this.#resolved.logger));
  }

  /**
   * Deploy an image: check the deployment, validate the image (linux/amd64, Astro Runtime label,
   * runtime version not lower than the deployment's, listed in the organization's deployment
   * options, Airflow 2 to 3 rule), optionally run the tests gate in it (`tests`, the gate of
   * `deployProject`), create an
   * `IMAGE_ONLY` deploy (or `IMAGE_AND_DAG` when `dagsDir` is given and DAG deploys are enabled,
   * or when DAG deploys are disabled and the image carries the DAGs), push it to the deploy's
   * `imageRepository:imageTag` (user `cli`, the API token as password), upload the DAG bundle
   * when there is one, finalize, and with `wait` wait until the deployment runs this image tag.
   *
   * `dryRun: true` resolves with `{ dryRun: true, plan }` (nothing pushed or created);
   * `skipUnchanged: true` resolves with `{ skipped: 'unchanged', ... }` when the deployment already
   * runs this image (by config digest) and bundle.
   */
  deployImage(params: DeployImageParams & { dryRun: true }): Promise<DeployDryRun>;
  deployImage(params: DeployImageParams & { dryRun?: false; skipUnchanged?: false }): Promise<DeployImageResult>;
  deployImage(params: DeployImageParams): Promise<DeployImageOutcome>;
  deployImage(params: DeployImageParams): Promise<DeployImageOutcome> {
    return deployImage(this.deployContext(), withRequestRetryEvents(params, this.#resolved.logger));
  }

  /**
   * Deploy an Astro project folder, as `astro deploy` does: read the deployment (default: the
   * project's `.astro/config.yaml` `project.deployment`), build the project into a linux/amd64
   * image through the Docker Engine API (without `dags/` when DAG deploys are on; nothing in the
   * project is written), validate it as `deployImage` does, run the tests gate (`tests`, default
   * `'parse'`; `force` skips it), and only then create an `IMAGE_AND_DAG` deploy, push the image,
   * upload `dags/` as a bundle when DAG deploys are on, finalize, and with `wait` wait for the
   * rollout. A failed build or test creates nothing at Astro.
   *
   * `dryRun: true` builds locally and resolves with `{ dryRun: true, plan }` (nothing pushed or
   * created); `skipUnchanged: true` resolves with `{ skipped: 'unchanged', ... }` when the
   * deployment already runs this image (by config digest) and bundle.
   */
  deployProject(params: DeployProjectParams & { dryRun: true }): Promise<DeployDryRun>;
  deployProject(params: DeployProjectParams & { dryRun?: false; skipUnchanged?: false }): Promise<DeployProjectResult>;
  deployProject(params: DeployProjectParams): Promise<DeployProjectOutcome>;
  deployProject(params: DeployProjectParams): Promise<DeployProjectOutcome> {
    return deployProject(this.deployContext(), withRequestRetryEvents(params, this.#resolved.logger));
  }

  /**
   * Roll a deployment back to an earlier deploy through Astro's rollback endpoint: `to` is a
   * deploy id or `'previous'` (the last successful deploy before the one running now, from the
   * deploy list). Astro runs that deploy's image and DAGs again; with `wait`, resolves once the
   * deployment runs them.
   *
   * The rollback is sent once; after a lost answer the deploy list is read for its record (see
   * `rollbackCheckTimeoutMs`), and it is sent again only after Astro itself answered 5xx or 408
   * (not a gateway's 502 or 504) and the list shows none.
   *
   * @throws AstroRollbackError `ASTRO_ROLLBACK_NO_TARGET` (nothing to roll back to),
   *   `ASTRO_ROLLBACK_REFUSED` (Astro refused it, with its status) or `ASTRO_ROLLBACK_UNKNOWN` (its
   *   answer was lost and no record of it showed up in time; it may still be made)
   */
  rollback(params: RollbackParams): Promise<RollbackResult> {
    return rollback(this.deployContext(), withRequestRetryEvents(params, this.#resolved.logger));
  }

  /**
   * Deploy one dags folder (or one `bundle`) to several deployments: `deployDags` for each, at
   * most `concurrency` (default 4) at a time, with the folder bundled once per `.airflowignore`
   * syntax among them (each deployment's runtime decides its syntax, unless `syntax` is given) and
   * `git: 'auto'` / `requireClean` read once. Resolves with one outcome per deployment, in the
   * order given: `{ deploymentId, ok: true, result }` or `{ deploymentId, ok: false, error }`; a
   * deployment that fails does not stop the others. Rejects only for what fails before any
   * deployment is touched: invalid options, `requireClean`.
   */
  deployDagsToMany(params: DeployDagsToManyParams): Promise<Array<DeployManyOutcome<DeployDagsToManyValue>>> {
    const logger = this.#resolved.logger;
    return deployDagsToMany(this.deployContext(), params, (one) => deployDags(this.deployContext(), withRequestRetryEvents(one, logger)));
  }

  /**
   * Deploy one image to several deployments: `deployImage` for each, at most `concurrency`
   * (default 4) at a time, with the image read once: an archive is opened once, the tests gate
   * (`tests`) runs once, and the first push uploads the layers, which the pushes to the other
   * deployments mount from its repository (a daemon image is not even exported again). The DAGs
   * (`dagsDir`) are bundled once per syntax, `git: 'auto'` / `requireClean` read once. Resolves
   * with one outcome per deployment, in order (`ok`, `result` with `tests`, or `error`); rejects
   * only for what fails before any deployment is touched: invalid options, `requireClean`, the
   * image's checks for the tests, the tests.
   */
  deployImageToMany(params: DeployImageToManyParams): Promise<Array<DeployManyOutcome<DeployImageToManyValue>>> {
    const logger = this.#resolved.logger;
    return deployImageToMany(this.deployContext(), params, (ctx, one) => deployImage(ctx, withRequestRetryEvents(one, logger)));
  }

  private deployContext(): DeployContext {
    return {
      deployments: this.deployments,
      deploys: this.deploys,
      deploymentOptions: this.deploymentOptions,
      claims: this.#resolved.claims,
      organizationId: this.organizationId,
      token: this.#resolved.token,
      dispatcher: this.#resolved.dispatcher,
      logger: this.#resolved.logger,
      retry: this.#resolved.retry,
    };
  }

  /**
   * Wait until a deploy is applied: the deploy record (when `deployId` is given) is `DEPLOYED`,
   * the deployment reports the finalized DAG version and/or image tag, and it is `HEALTHY` (or
   * `HIBERNATING`). Polling starts at once and backs off with jitter.
   *
   * Throws {@link AstroRolloutError} with `ASTRO_ROLLOUT_FAILED` when the deploy fails and
   * `ASTRO_ROLLOUT_TIMEOUT` (carrying the last observed state) when `timeoutMs` passes.
   */
  waitForRollout(params: WaitForRolloutParams): Promise<RolloutResult> {
    // The deploy record it returns has its upload SAS redacted (issue #15).
    const { logger } = this.#resolved;
    return waitForRollout(
      { deployments: this.deployments, deploys: this.deploys, logger, token: this.#resolved.token, dispatcher: this.#resolved.dispatcher, retry: this.#resolved.retry },
      withRequestRetryEvents(params, logger),
    ).then(redactRolloutSas);
  }
}

/** An `onRetry` callback that reports transport retries as `api:retry` events through `emit`. */
function retryEventEmitter(emit: Emit<ClientEvent>): NonNullable<RequestOptions['onRetry']> {
  return (info) =>
    emit({
      type: 'api:retry',
      method: info.method,
      path: info.path,
      attempt: info.attempt,
      delayMs: info.delayMs,
      ...(isAstroError(info.error) ? { errorCode: info.error.code } : {}),
      errorMessage: info.error instanceof Error ? info.error.message : String(info.error),
    });
}

/**
 * `options` with an `onRetry` that calls the caller's own (never replaced) and then reports the
 * retry as an `api:retry` event on `onEvent`; each of the two is called through the kernel's
 * emitter, so one that throws is ignored and the other still runs.
 */
function chainOnRetry<T extends Pick<RequestOptions, 'onRetry'>>(
  options: T | undefined,
  onEvent: ((event: ClientEvent) => void) | undefined,
  logger: Logger,
): T {
  const own = options?.onRetry;
  if (!own && !onEvent) return options ?? ({} as T);
  const emit = emitterFor(onEvent, logger);
  const event = onEvent ? retryEventEmitter(emit) : undefined;
  return {
    ...(options as T),
    onRetry: (info) => {
      safeCall(own, logger, info);
      event?.(info);
    },
  };
}

/** Options of a call (setDagDeploy, waitForRollout) whose transport retries become `api:retry` events. */
function withRetryEvents<T extends Pick<RequestOptions, 'onRetry'> & { onEvent?: (e: ClientEvent) => void }>(options: T, logger: Logger): T {
  return chainOnRetry(options, options.onEvent, logger);
}

/** Flow parameters whose `request.onRetry` also reports `api:retry` events on `onEvent`. */
function withRequestRetryEvents<T extends { request?: Omit<RequestOptions, 'signal'>; onEvent?: (e: never) => void }>(params: T, logger: Logger): T {
  const onEvent = params.onEvent as ((e: ClientEvent) => void) | undefined;
  if (!onEvent) return params;
  return { ...params, request: chainOnRetry(params.request, onEvent, logger) };
}
