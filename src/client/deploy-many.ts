/**
 * One deploy to many deployments: `deployDagsToMany` and `deployImageToMany`.
 *
 * What is the same for every deployment is done once: the git metadata (and `requireClean`), the
 * DAG bundle (once per `.airflowignore` syntax among the targets), and for images the opening of
 * an archive, the tests gate and the reading of the image: the first push uploads the layers, and
 * the pushes to the other deployments mount them from its repository (and skip the export of a
 * daemon image altogether). Each deployment then goes through its own flow (`deployDags`,
 * `deployImage`: checks, create, upload or push, finalize, wait), at most `concurrency` at a time;
 * one failing does not stop the others, and the call resolves with one outcome per deployment, in
 * the order given.
 */
import { dirname } from 'node:path';
import { ignoreSyntaxForRuntime, type BundleResult, type IgnoreSyntax } from '../bundle/index.js';
import {
  classifyImageSource,
  LayerCache,
  openImageArchive,
  pushImage,
  splitRepository,
  validateImage,
  type ImageArchive,
  type ImageSource,
  type ProjectTestsResult,
} from '../image/index.js';
import { checkPushMethod } from '../image/push-method.js';
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { bundleDags, type DeployContext } from './deploy-common.js';
import { checkDagsSource, SHAPING_OPTIONS } from './bundle-source.js';
import { checkFlowOptions } from './flow-options.js';
import type { deployDags, DeployDagsEvent, DeployDagsParams } from './deploy-dags.js';
import { imageTestsGate, pinnedSource, type deployImage, type DeployImageEvent, type DeployImageParams } from './deploy-image.js';
import { deployGitFields, type DeployGitParams } from './git.js';
import { pathSegment } from './path.js';
import type { RequestOptions } from './transport.js';

/** Deployments deployed at the same time, by default. */
export const DEFAULT_MANY_CONCURRENCY = 4;

/**
 * What became of one deployment of a many-deployment call: its flow's result, or the error it
 * failed with (an `AstroError` for every failure the SDK foresees: match it with `isAstroError`;
 * an error after its deploy was created carries `deployId`).
 */
export type DeployManyOutcome<R> = { deploymentId: string; ok: true; result: R } | { deploymentId: string; ok: false; error: Error };

/** Parameters of `deployDagsToMany`: those of `deployDags`, for several deployments. */
export interface DeployDagsToManyParams extends Omit<DeployDagsParams, 'deploymentId' | 'onEvent'> {
  /** The deployments to deploy to, each once (a repeated id is refused). */
  deploymentIds: string[];
  /** Deployments deployed at the same time. @default 4 */
  concurrency?: number;
  /**
   * Every event of every deployment's flow, with the deployment it concerns; `undefined` for what
   * is done once for all of them (bundling, `deploy:git`). Exceptions thrown here are ignored.
   */
  onEvent?: (event: DeployDagsEvent, deploymentId: string | undefined) => void;
}

/** What deployDags resolves with (for each deployment of `deployDagsToMany`). */
export type DeployDagsToManyValue = Awaited<ReturnType<typeof deployDags>>;

/** Parameters of `deployImageToMany`: those of `deployImage`, for several deployments. */
export interface DeployImageToManyParams extends Omit<DeployImageParams, 'deploymentId' | 'onEvent'> {
  /** The deployments to deploy to, each once (a repeated id is refused). */
  deploymentIds: string[];
  /** Deployments deployed at the same time (the first push runs alone). @default 4 */
  concurrency?: number;
  /**
   * Every event of every deployment's flow, with the deployment it concerns; `undefined` for what
   * is done once for all of them (bundling, the tests gate, `deploy:git`). Exceptions thrown here
   * are ignored.
   */
  onEvent?: (event: DeployImageEvent, deploymentId: string | undefined) => void;
}

/** What deployImage resolves with (for each deployment of `deployImageToMany`), with the tests run once for all. */
export type DeployImageToManyValue = Awaited<ReturnType<typeof deployImage>> & { tests?: ProjectTestsResult };

function invalid(message: string): AstroConfigError {
  return new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, message);
}

/** The deployment ids, checked: a non-empty list of distinct ids that can be URL path segments. */
function checkTargets(ids: unknown): string[] {
  if (!Array.isArray(ids) || ids.length === 0) throw invalid('deploymentIds must be a non-empty array of deployment ids.');
  const seen = new Set<string>();
  for (const id of ids) {
    pathSegment('deploymentId', id);
    if (seen.has(id as string)) throw invalid(`deploymentIds names ${String(id)} twice; deploy to each deployment once.`);
    seen.add(id as string);
  }
  return ids as string[];
}

function checkConcurrency(value: unknown): number {
  if (value === undefined) return DEFAULT_MANY_CONCURRENCY;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw invalid(`concurrency must be a positive integer; got ${String(value)}.`);
  return value;
}

/** Run `run` for each id, at most `limit` at a time; one outcome per id, in order, never a rejection. */
async function eachLimited<R>(ids: string[], limit: number, run: (id: string) => Promise<R>): Promise<Array<DeployManyOutcome<R>>> {
  const out: Array<DeployManyOutcome<R>> = new Array(ids.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < ids.length; i = next++) {
      const deploymentId = ids[i]!;
      try {
        out[i] = { deploymentId, ok: true, result: await run(deploymentId) };
      } catch (error) {
        out[i] = { deploymentId, ok: false, error: error instanceof Error ? error : new Error(String(error)) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, ids.length) }, worker));
  return out;
}

/**
 * `git: 'auto'` and `requireClean`, once for every deployment: the fields to pass on (a resolved
 * `git` object, the description, no second check), or nothing when neither is asked.
 */
async function gitOnce(
  params: DeployGitParams,
  dir: string | undefined,
  signal: AbortSignal | undefined,
  emit: (e: never) => void,
): Promise<Pick<DeployGitParams, 'git' | 'description' | 'requireClean'>> {
  if (params.git !== 'auto' && !params.requireClean) return {};
  const fields = await deployGitFields(params, dir, signal, emit as (e: unknown) => void);
  return { git: fields.git, description: fields.description, requireClean: false };
}

/** `params` without its DAG source and the options that shape a bundle (for a flow given a bundle). */
function withoutShaping<T extends object>(params: T): T {
  const copy = { ...params } as Record<string, unknown>;
  delete copy.dagsDir;
  for (const k of SHAPING_OPTIONS) delete copy[k];
  return copy as T;
}

/** Bundles of one dags folder, made once per syntax the first time a deployment needs one; removed by `cleanup`. */
class SharedBundles {
  private readonly made = new Map<IgnoreSyntax, Promise<BundleResult>>();
  constructor(
    private readonly make: (syntax: IgnoreSyntax) => Promise<BundleResult>,
  ) {}

  for(syntax: IgnoreSyntax): Promise<BundleResult> {
    let bundle = this.made.get(syntax);
    if (!bundle) {
      bundle = this.make(syntax);
      // Observed here: a failure is each waiting deployment's, never an unhandled rejection.
      bundle.catch(() => undefined);
      this.made.set(syntax, bundle);
    }
    return bundle;
  }

  async cleanup(): Promise<void> {
    for (const bundle of this.made.values()) await bundle.then((b) => b.cleanup(), () => undefined);
  }
}

/** The syntax of a deployment: the one given, else its runtime's. */
async function syntaxOf(ctx: DeployContext, deploymentId: string, given: IgnoreSyntax | undefined, request: RequestOptions): Promise<{ syntax: IgnoreSyntax; dagDeploys: boolean }> {
  const deployment = await ctx.deployments.get(deploymentId, request);
  return {
    syntax: given ?? ignoreSyntaxForRuntime(deployment.astroRuntimeVersion ?? deployment.runtimeVersion),
    dagDeploys: deployment.isDagDeployEnabled && !deployment.remoteExecution?.enabled,
  };
}

/**
 * Implementation of `AstroClient.deployDagsToMany`; see there. `runOne` is `deployDags` with the
 * client's wiring.
 */
export async function deployDagsToMany<R>(
  ctx: DeployContext,
  params: DeployDagsToManyParams,
  runOne: (params: DeployDagsParams) => Promise<R>,
): Promise<Array<DeployManyOutcome<R>>> {
  const ids = checkTargets(params.deploymentIds);
  const concurrency = checkConcurrency(params.concurrency);
  checkDagsSource(params, true);
  checkFlowOptions(params);
  const { deploymentIds: _ids, concurrency: _concurrency, onEvent, ...common } = params;
  const { signal } = common;
  const shared = emitterFor<DeployDagsEvent>(onEvent ? (e) => onEvent(e, undefined) : undefined, ctx.logger);
  const request: RequestOptions = { ...common.request, ...(signal ? { signal } : {}) };
  const perDeployment: Omit<DeployDagsParams, 'deploymentId'> = { ...common, ...(await gitOnce(common, common.dagsDir ?? common.bundle?.root, signal, shared)) };
  const bundles = new SharedBundles((syntax) => bundleDags(common.dagsDir!, common, syntax, signal, shared));
  try {
    return await eachLimited(ids, concurrency, async (deploymentId) => {
      const own = onEvent ? { onEvent: (e: DeployDagsEvent) => onEvent(e, deploymentId) } : {};
      if (common.bundle) return runOne({ ...perDeployment, deploymentId, ...own });
      throwIfAborted(signal);
      // The deployment's syntax decides which bundle it gets; its flow reads it again and checks.
      const { syntax } = await syntaxOf(ctx, deploymentId, common.syntax, request);
      const bundle = await bundles.for(syntax);
      return runOne({ ...withoutShaping(perDeployment), deploymentId, bundle, ...own });
    });
  } finally {
    await bundles.cleanup();
  }
}

/**
 * A push for the image flows that uploads the image fully once, then lets every other push mount
 * the layers from the repository it went to (pushes wait for the first to end; when it fails, the
 * next one takes its place).
 */
function pushOnceThenMount(): NonNullable<DeployContext['pushImage']> {
  let primed: { host: string; path: string } | undefined;
  let leader: Promise<void> | undefined;
  return async (source, target, options) => {
    while (!primed && leader) await leader;
    if (!primed) {
      let release!: () => void;
      leader = new Promise<void>((resolve) => (release = resolve));
      try {
        const result = await pushImage(source, target, options);
        primed = splitRepository(target.repository);
        return result;
      } finally {
        leader = undefined;
        release();
      }
    }
    const here = splitRepository(target.repository);
    const mountFrom = primed.host === here.host && primed.path !== here.path ? [...(options.mountFrom ?? []), primed.path] : options.mountFrom;
    return pushImage(source, target, { ...options, ...(mountFrom ? { mountFrom } : {}) });
  };
}

/**
 * Implementation of `AstroClient.deployImageToMany`; see there. `runOne` is `deployImage` with the
 * client's wiring.
 */
export async function deployImageToMany<R>(
  ctx: DeployContext,
  params: DeployImageToManyParams,
  runOne: (ctx: DeployContext, params: DeployImageParams) => Promise<R>,
): Promise<Array<DeployManyOutcome<R & { tests?: ProjectTestsResult }>>> {
  const ids = checkTargets(params.deploymentIds);
  const concurrency = checkConcurrency(params.concurrency);
  checkDagsSource(params, false);
  checkFlowOptions(params);
  const { deploymentIds: _ids, concurrency: _concurrency, onEvent, ...common } = params;
  const { signal } = common;
  const shared = emitterFor<DeployImageEvent>(onEvent ? (e) => onEvent(e, undefined) : undefined, ctx.logger);
  const request: RequestOptions = { ...common.request, ...(signal ? { signal } : {}) };
  const dagsDir = common.dagsDir ?? common.bundle?.root;
  const git = await gitOnce(common, common.projectDir ?? (dagsDir !== undefined ? dirname(dagsDir) : undefined), signal, shared);

  // The archive is opened (indexed, a .tar.gz gunzipped) once for every deployment.
  const where = await classifyImageSource(common.image);
  checkPushMethod(common.push?.method, where);
  let opened: ImageArchive | undefined;
  if (where.kind === 'archive' && !where.archive) {
    opened = await openImageArchive(where.path, { ...(signal ? { signal } : {}), ...(common.push?.tempDir ? { tempDir: common.push.tempDir } : {}) });
  }
  const bundles = new SharedBundles((syntax) => bundleDags(common.dagsDir!, common, syntax, signal, shared));
  try {
    let source: ImageSource = opened ? { archive: opened, ...(where.kind === 'archive' && where.archiveImage ? { archiveImage: where.archiveImage } : {}) } : common.image;
    // The tests gate, once: on the image checked against the organization's rules (each
    // deployment's flow checks it against its own runtime again).
    let tests: ProjectTestsResult | undefined;
    if ((common.tests ?? 'none') !== 'none') {
      const options = await ctx.deploymentOptions.get(request);
      const image = await validateImage(source, {
        allowedRuntimeVersions: options.runtimeReleases.map((r) => r.version),
        ...(common.docker ? { docker: common.docker } : {}),
        ...(signal ? { signal } : {}),
      });
      tests = await imageTestsGate(common, image, signal, shared, ctx.logger);
      // Every deployment gets the image that was tested, whatever its name points at later.
      source = pinnedSource(source, image);
    }
    // Layers gzipped by the first push are found again by their digests in this cache, then
    // mounted: the image is read once (a private cache when the caller turned the shared one off).
    const push = { ...common.push, ...(common.push?.layerCache === false ? { layerCache: new LayerCache() } : {}) };
    const flowContext: DeployContext = { ...ctx, pushImage: pushOnceThenMount() };
    const base: Omit<DeployImageParams, 'deploymentId'> = { ...common, ...git, image: source, tests: 'none', push };
    const outcomes = await eachLimited(ids, concurrency, async (deploymentId) => {
      const own = onEvent ? { onEvent: (e: DeployImageEvent) => onEvent(e, deploymentId) } : {};
      let result: R;
      if (common.dagsDir === undefined) {
        result = await runOne(flowContext, { ...base, deploymentId, ...own });
      } else {
        throwIfAborted(signal);
        const { syntax, dagDeploys } = await syntaxOf(ctx, deploymentId, common.syntax, request);
        // Without DAG deploys the image carries the DAGs: no bundle (the tests ran already).
        const bundle = dagDeploys ? { bundle: await bundles.for(syntax) } : {};
        result = await runOne(flowContext, { ...withoutShaping(base), deploymentId, ...bundle, ...own });
      }
      return tests && result && typeof result === 'object' ? { ...result, tests } : result;
    });
    return outcomes as Array<DeployManyOutcome<R & { tests?: ProjectTestsResult }>>;
  } finally {
    await bundles.cleanup();
    await opened?.close();
  }
}
