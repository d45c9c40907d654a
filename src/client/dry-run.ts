/**
 * Dry runs of the deploy flows: everything the real run reads and checks, nothing it sends.
 *
 * A plan says what the real run would create (the deploy type and description), what it would
 * ship (the bundle's fingerprint, files, bytes, what is excluded and kept; the image's digest,
 * platform and runtime), whether that equals what the deployment runs now, which image checks and
 * tests would run, the DAG-deploy and CI/CD-enforcement state, every refusal the real run would
 * hit (collected, not thrown), and the impact on running work. Only GETs reach Astro; the bundle
 * is written to a temporary file and removed; `deployProject` builds the image locally (nothing
 * is pushed); no test container runs.
 */
import { dirname, join } from 'node:path';
import { stat } from 'node:fs/promises';
import { ignoreSyntaxForRuntime, type BundleResult, type BundleWarning, type ExcludedPath, type IgnoreSyntax, type KeptPath } from '../bundle/index.js';
import {
  assertValid,
  buildProjectImage,
  classifyImageSource,
  compareRuntimeVersions,
  inspectImage,
  openImageArchive,
  readAstroProject,
  suitesOf,
  PARSE_MIN_RUNTIME,
  type ImageArchive,
  type ImageInfo,
  type ImageSource,
  type ProjectTestSuite,
  type ProjectTestsMode,
} from '../image/index.js';
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, ErrorCodes, isAstroError, type AstroErrorCode } from '../core/errors.js';
import { runInScope } from '../core/scope.js';
import { bundleDags, checkCicd, checkProjectDags, projectBuildOptions, type DeployContext } from './deploy-common.js';
import { dagsBundle } from './bundle-source.js';
import { deployGitFields } from './git.js';
import { checkDagDeployable, type DeployDagsEvent, type DeployDagsParams } from './deploy-dags.js';
import type { DeployImageEvent, DeployImageParams } from './deploy-image.js';
import type { DeployProjectEvent, DeployProjectParams } from './deploy-project.js';
import { impactOf, type DeployImpact } from './impact.js';
import { pathSegment } from './path.js';
import type { DeployType, Deployment, DeploymentOptions } from './schemas.js';
import { compareWithRunning, describeDeploy, runningCode, type CodeIdentity, type UnchangedCheck } from './skip-unchanged.js';
import type { RequestOptions } from './transport.js';

/** Something that would stop the real run, with the error code it would throw. */
export interface DeployRefusal {
  /** The code of the error the real run would throw. */
  code: AstroErrorCode;
  /** Its message: what to do about it. */
  message: string;
}

/** The bundle a run would ship. */
export interface PlannedBundle {
  /** The `.airflowignore` syntax applied. */
  syntax: IgnoreSyntax;
  /** Hex SHA-256 over names, modes and content hashes (mtimes left out). */
  fingerprint: string;
  /** Hex SHA-256 of the `.tar.gz`. */
  sha256: string;
  /** Size of the `.tar.gz`, in bytes. */
  bytes: number;
  /** Content bytes before compression. */
  contentBytes: number;
  /** Archive members (files and symlinks). */
  files: number;
  /** Their paths, relative to the dags folder. */
  paths: string[];
  /** What is left out, and why. */
  excluded: ExcludedPath[];
  /** What the rules excluded but is shipped anyway (hidden imports, symlink targets). */
  kept: KeptPath[];
  /** Findings of the scan (invalid patterns, hidden imports kept, ...). */
  warnings: BundleWarning[];
}

/** The image a run would push, and the checks it passed or failed. */
export interface PlannedImage {
  /** The image as named (daemon name or ID, archive path; the built tag for deployProject). */
  reference: string;
  /** Config digest (image ID), `sha256:...`: what `skipUnchanged` compares. */
  configDigest: string;
  /** `os/architecture[/variant]` of the image, e.g. `linux/amd64`. */
  platform: string;
  /** Its Astro Runtime label, when present. */
  runtimeVersion?: string;
  /** Its Airflow label, when present. */
  airflowVersion?: string;
  /** The checks the real run makes before creating the deploy. */
  checks: Array<'platform linux/amd64' | 'Astro Runtime label' | 'no runtime downgrade' | "runtime listed in the organization's deployment options" | 'Airflow 2 to 3 rule'>;
  /** Whether every check passed (a failure is also in `refusals`). */
  valid: boolean;
}

/** The tests gate a run would run (a dry run never runs them). */
export interface PlannedTests {
  /** The tests mode (`tests`, default `'none'` for deployImage, `'parse'` for deployProject). */
  mode: ProjectTestsMode;
  /** Suites that would run. */
  suites: ProjectTestSuite[];
  /** Why none would run, when so. */
  skipped?: 'force' | 'runtime-too-old';
}

/** What a deploy would do, from a dry run. */
export interface DeployPlan {
  /** The deployment it would deploy to. */
  deploymentId: string;
  /** The deploy type the run would create. */
  deployType: DeployType;
  /** The description it would send (the fingerprint marker included). */
  description: string;
  /** False when a refusal would stop the run, or `skipUnchanged` would skip it. */
  wouldDeploy: boolean;
  /** Every refusal the real run would hit, in order. */
  refusals: DeployRefusal[];
  /** The deployment as read. */
  deployment: {
    name: string;
    status: string;
    runtimeVersion?: string;
    isDagDeployEnabled: boolean;
    isCicdEnforced: boolean;
    remoteExecution: boolean;
    dagTarballVersion?: string;
    imageTag?: string;
  };
  /** DAG deploys: on now, and whether `enableDagDeploy` would turn them on first. */
  dagDeploy: { enabled: boolean; wouldEnable: boolean };
  /** CI/CD enforcement, and whether this token is an API token (which it requires). */
  cicd: { enforced: boolean; apiToken: boolean };
  /** The DAG bundle it would upload (absent: no bundle ships, or bundling would fail). */
  bundle?: PlannedBundle;
  /** The image it would push (image flows; absent when it cannot be read). */
  image?: PlannedImage;
  /** The tests gate it would run (image flows). */
  tests?: PlannedTests;
  /** How what would ship compares with what runs now (from the deploy records). */
  unchanged: UnchangedCheck;
  /** Whether `skipUnchanged` (when set) would skip the deploy. */
  wouldSkip: boolean;
  /** What the deploy does to running work. */
  impact: DeployImpact;
}

/** What a flow resolves with under `dryRun: true`. */
export interface DeployDryRun {
  /** Always true: nothing was deployed. */
  dryRun: true;
  /** What the real run would do. */
  plan: DeployPlan;
}

/** Run `check`; a thrown SDK refusal is recorded instead. */
function collect(refusals: DeployRefusal[], check: () => void): boolean {
  try {
    check();
    return true;
  } catch (error) {
    if (!isAstroError(error)) throw error;
    refusals.push({ code: error.code, message: error.message });
    return false;
  }
}

/** Await `work`; a thrown refusal (an SDK error other than an abort or an API failure) is recorded and undefined returned. */
async function collectAsync<T>(refusals: DeployRefusal[], work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    if (!isAstroError(error) || error.code === ErrorCodes.ABORTED || error.code.startsWith('ASTRO_API_') || error.code === ErrorCodes.CONNECTION || error.code === ErrorCodes.TIMEOUT) throw error;
    refusals.push({ code: error.code, message: error.message });
    return undefined;
  }
}

function deploymentSummary(d: Deployment): DeployPlan['deployment'] {
  const runtimeVersion = d.astroRuntimeVersion ?? d.runtimeVersion;
  return {
    name: d.name,
    status: d.status,
    ...(runtimeVersion ? { runtimeVersion } : {}),
    isDagDeployEnabled: d.isDagDeployEnabled,
    isCicdEnforced: d.isCicdEnforced,
    remoteExecution: d.remoteExecution?.enabled === true,
    ...(d.dagTarballVersion ? { dagTarballVersion: d.dagTarballVersion } : {}),
    ...(d.imageTag ? { imageTag: d.imageTag } : {}),
  };
}

function plannedBundle(bundle: BundleResult): PlannedBundle {
  const m = bundle.manifest;
  return {
    syntax: m.syntax,
    fingerprint: m.fingerprint,
    sha256: bundle.sha256,
    bytes: bundle.bytes,
    contentBytes: m.totals.bytes,
    files: m.totals.files,
    paths: m.files.map((f) => f.path),
    excluded: m.excluded,
    kept: m.kept,
    warnings: bundle.warnings,
  };
}

/**
 * The bundle part of a plan. A bundle given (made once with createBundle) is planned as it is,
 * refused on a syntax mismatch; a folder is bundled for the plan only, its temporary file removed at once.
 */
async function planBundle(
  refusals: DeployRefusal[],
  dagsDir: string | undefined,
  params: DeployDagsParams | DeployImageParams | DeployProjectParams,
  where: { deploymentId: string; syntax: IgnoreSyntax; runtimeVersion: string | undefined },
  signal: AbortSignal | undefined,
  emit: (e: never) => void,
): Promise<PlannedBundle | undefined> {
  const given = 'bundle' in params ? params.bundle : undefined;
  if (given) return collectAsync(refusals, async () => plannedBundle((await dagsBundle(params as DeployDagsParams | DeployImageParams, where, signal, emit as (e: unknown) => void)).bundle));
  const bundle = await collectAsync(refusals, () => bundleDags(dagsDir!, params, where.syntax, signal, emit as (e: unknown) => void));
  if (!bundle) return undefined;
  try {
    return plannedBundle(bundle);
  } finally {
    await bundle.cleanup();
  }
}

const IMAGE_CHECKS: PlannedImage['checks'] = ['platform linux/amd64', 'Astro Runtime label', 'no runtime downgrade', "runtime listed in the organization's deployment options", 'Airflow 2 to 3 rule'];

function plannedImage(info: ImageInfo, valid: boolean): PlannedImage {
  return {
    reference: info.reference,
    configDigest: info.configDigest,
    platform: `${info.os}/${info.architecture}${info.variant ? `/${info.variant}` : ''}`,
    ...(info.runtimeVersion ? { runtimeVersion: info.runtimeVersion } : {}),
    ...(info.airflowVersion ? { airflowVersion: info.airflowVersion } : {}),
    checks: IMAGE_CHECKS,
    valid,
  };
}

/** The tests a run would run, as the flows decide (force, runtimes before 4.1.0 skip the parse). */
/** The image as the real run checks it against the deployment; a failed check is a refusal. */
function validatedImage(
  refusals: DeployRefusal[],
  info: ImageInfo,
  runtimeVersion: string | undefined,
  options: DeploymentOptions,
  allowAirflow3Upgrade: boolean | undefined,
): PlannedImage {
  const valid = collect(refusals, () =>
    assertValid(info, {
      ...(runtimeVersion ? { deploymentRuntimeVersion: runtimeVersion } : {}),
      allowedRuntimeVersions: options.runtimeReleases.map((r) => r.version),
      ...(allowAirflow3Upgrade ? { allowAirflow3Upgrade: true } : {}),
    }),
  );
  return plannedImage(info, valid);
}

function plannedTests(mode: ProjectTestsMode, force: boolean | undefined, runtimeVersion: string | undefined): PlannedTests {
  const suites = suitesOf(mode);
  if (suites.length && force) return { mode, suites: [], skipped: 'force' };
  if (mode === 'parse' && runtimeVersion && compareRuntimeVersions(runtimeVersion, PARSE_MIN_RUNTIME) < 0) return { mode, suites: [], skipped: 'runtime-too-old' };
  return { mode, suites };
}

/** What differs between the plans of the three flows; {@link finishPlan} adds the rest. */
interface PlanParts {
  deploymentId: string;
  deployType: DeployType;
  refusals: DeployRefusal[];
  /** Whether the run would enable DAG deploys first (deployDags' `enableDagDeploy`). @default false */
  wouldEnable?: boolean;
  bundle?: PlannedBundle | undefined;
  image?: PlannedImage | undefined;
  tests?: PlannedTests | undefined;
}

/** The plan: the parts, the deployment's state, and what the running code says about skipping. */
async function finishPlan(
  ctx: DeployContext,
  deployment: Deployment,
  parts: PlanParts,
  params: { description?: string | undefined; recordFingerprint?: boolean | undefined; skipUnchanged?: boolean | undefined },
  requestOptions: RequestOptions,
): Promise<DeployDryRun> {
  const { bundle, image, tests } = parts;
  // What ships, by content, as the real run records it.
  const ours: CodeIdentity = { ...(image ? { image: image.configDigest } : {}), ...(bundle ? { dags: bundle.fingerprint } : {}) };
  const running = await runningCode(ctx.deploys, deployment, requestOptions);
  const unchanged = compareWithRunning(ours, running, deployment);
  const wouldSkip = params.skipUnchanged === true && unchanged.unchanged;
  return {
    dryRun: true,
    plan: {
      deploymentId: parts.deploymentId,
      deployType: parts.deployType,
      refusals: parts.refusals,
      deployment: deploymentSummary(deployment),
      dagDeploy: { enabled: deployment.isDagDeployEnabled, wouldEnable: parts.wouldEnable ?? false },
      cicd: { enforced: deployment.isCicdEnforced, apiToken: ctx.claims.isApiToken },
      ...(bundle ? { bundle } : {}),
      ...(image ? { image } : {}),
      ...(tests ? { tests } : {}),
      description: describeDeploy(params.description, ours, params.recordFingerprint !== false),
      wouldDeploy: parts.refusals.length === 0 && !wouldSkip,
      unchanged,
      wouldSkip,
      impact: impactOf(parts.deployType),
    },
  };
}

/** The dry run of `deployDags`. */
export async function planDeployDags(ctx: DeployContext, params: DeployDagsParams): Promise<DeployDryRun> {
  const { deploymentId, signal } = params;
  const emit = emitterFor<DeployDagsEvent>(params.onEvent, ctx.logger);
  const requestOptions: RequestOptions = { ...params.request, ...(signal ? { signal } : {}) };
  const refusals: DeployRefusal[] = [];
  // requireClean and git: 'auto' as the real run reads them (a dirty tree is a refusal).
  const git = await collectAsync(refusals, () => deployGitFields(params, params.dagsDir ?? params.bundle?.root, signal, emit));
  const deployment = await ctx.deployments.get(deploymentId, requestOptions);
  const wouldEnable = !deployment.isDagDeployEnabled && params.enableDagDeploy === true;
  if (wouldEnable) {
    // What setDagDeploy refuses: a CI/CD-enforced deployment changed with a user token.
    collect(refusals, () => checkCicd(deployment, ctx.claims));
  } else {
    collect(refusals, () => checkDagDeployable({ ...deployment, remoteExecution: undefined, isCicdEnforced: false }, ctx.claims));
  }
  if (deployment.remoteExecution?.enabled) collect(refusals, () => checkDagDeployable({ ...deployment, isDagDeployEnabled: true, isCicdEnforced: false }, ctx.claims));
  if (!wouldEnable) collect(refusals, () => checkCicd(deployment, ctx.claims));
  const runtimeVersion = deployment.astroRuntimeVersion ?? deployment.runtimeVersion;
  const syntax = params.syntax ?? ignoreSyntaxForRuntime(runtimeVersion);
  const bundle = await planBundle(refusals, params.dagsDir, params, { deploymentId, syntax, runtimeVersion }, signal, emit);
  return finishPlan(
    ctx,
    deployment,
    { deploymentId, deployType: 'DAG_ONLY', refusals, wouldEnable, bundle },
    // Right after enabling, the deployment runs no DAGs: never skipped.
    { ...params, skipUnchanged: params.skipUnchanged === true && !wouldEnable, description: git?.description ?? params.description },
    requestOptions,
  );
}

/** The dry run of `deployImage`. */
export async function planDeployImage(ctx: DeployContext, params: DeployImageParams): Promise<DeployDryRun> {
  const { deploymentId, signal } = params;
  const emit = emitterFor<DeployImageEvent>(params.onEvent, ctx.logger);
  const requestOptions: RequestOptions = { ...params.request, ...(signal ? { signal } : {}) };
  const refusals: DeployRefusal[] = [];
  // The DAGs' folder: dagsDir, or the folder a given bundle was made from.
  const dagsDir = params.dagsDir ?? params.bundle?.root;
  const gitDir = params.projectDir ?? (dagsDir !== undefined ? dirname(dagsDir) : undefined);
  const git = await collectAsync(refusals, () => deployGitFields(params, gitDir, signal, emit));
  const deployment = await ctx.deployments.get(deploymentId, requestOptions);
  collect(refusals, () => checkCicd(deployment, ctx.claims));
  const runtimeVersion = deployment.astroRuntimeVersion ?? deployment.runtimeVersion;
  const shipDags = (params.dagsDir !== undefined || params.bundle !== undefined) && deployment.isDagDeployEnabled && !deployment.remoteExecution?.enabled;
  const deployType: DeployType = shipDags || !deployment.isDagDeployEnabled ? 'IMAGE_AND_DAG' : 'IMAGE_ONLY';
  const options = await ctx.deploymentOptions.get(requestOptions);

  let image: PlannedImage | undefined;
  let tests: PlannedTests | undefined;
  const where = await classifyImageSource(params.image);
  let opened: ImageArchive | undefined;
  try {
    if (where.kind === 'archive' && !where.archive) {
      opened = await collectAsync(refusals, () => openImageArchive(where.path, { ...(signal ? { signal } : {}), ...(params.push?.tempDir ? { tempDir: params.push.tempDir } : {}) }));
    }
    const failedToOpen = where.kind === 'archive' && !where.archive && !opened;
    const source: ImageSource = opened ? { archive: opened, ...(where.kind === 'archive' && where.archiveImage ? { archiveImage: where.archiveImage } : {}) } : params.image;
    const info = failedToOpen ? undefined : await collectAsync(refusals, () => inspectImage(source, { ...(params.docker ? { docker: params.docker } : {}), ...(signal ? { signal } : {}) }));
    if (info) {
      image = validatedImage(refusals, info, runtimeVersion, options, params.allowAirflow3Upgrade);
      tests = plannedTests(params.tests ?? 'none', params.force, info.runtimeVersion);
      if (tests.suites.length) {
        if (gitDir === undefined) refusals.push({ code: ErrorCodes.DEPLOY_REFUSED, message: 'tests need projectDir (or dagsDir inside the project): the folders the tests run on.' });
        else if (info.source === 'archive') {
          refusals.push({ code: ErrorCodes.DEPLOY_REFUSED, message: 'The tests run a container, so they need an image in the Docker daemon, not an archive. Load it with `docker load` first, or pass force: true.' });
        }
      }
    }
  } finally {
    await opened?.close();
  }
  const syntax = params.syntax ?? ignoreSyntaxForRuntime(runtimeVersion);
  const bundle = shipDags ? await planBundle(refusals, params.dagsDir, params, { deploymentId, syntax, runtimeVersion }, signal, emit) : undefined;
  return finishPlan(
    ctx,
    deployment,
    { deploymentId, deployType, refusals, bundle, image, tests },
    { ...params, description: git?.description ?? params.description },
    requestOptions,
  );
}

/** The dry run of `deployProject`: the image is built locally (the build cache makes a rebuild cheap), never pushed. */
export async function planDeployProject(ctx: DeployContext, params: DeployProjectParams): Promise<DeployDryRun> {
  const project = await readAstroProject(params.projectDir ?? process.cwd(), params.dockerfile ? { dockerfile: params.dockerfile } : {});
  const deploymentId = params.deploymentId ?? project.config.deployment;
  if (!deploymentId) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `No deploymentId given and ${project.dir}/.astro/config.yaml names no project.deployment: pass deploymentId.`);
  }
  pathSegment('deploymentId', deploymentId);
  const mode = params.tests ?? 'parse';
  suitesOf(mode);
  const emit = emitterFor<DeployProjectEvent>(params.onEvent, ctx.logger);
  return runInScope(params.signal, async (scope) => {
    const signal = scope.signal;
    const requestOptions: RequestOptions = { ...params.request, signal };
    const refusals: DeployRefusal[] = [];
    const git = await collectAsync(refusals, () => deployGitFields(params, project.dir, signal, emit));
    const deployment = await ctx.deployments.get(deploymentId, requestOptions);
    collect(refusals, () => checkCicd(deployment, ctx.claims));
    const runtimeVersion = deployment.astroRuntimeVersion ?? deployment.runtimeVersion;
    const remote = deployment.remoteExecution?.enabled === true;
    const dagsDir = join(project.dir, 'dags');
    const dagsIsDir = await stat(dagsDir).then((s) => s.isDirectory(), () => false);
    collect(refusals, () => checkProjectDags(dagsDir, dagsIsDir, deployment, params.allowEmpty));
    const shipDags = deployment.isDagDeployEnabled && !remote && dagsIsDir;
    const syntax = params.syntax ?? ignoreSyntaxForRuntime(runtimeVersion);
    const options = await ctx.deploymentOptions.get(requestOptions);
    const bundle = shipDags ? await planBundle(refusals, dagsDir, params, { deploymentId, syntax, runtimeVersion }, signal, emit) : undefined;
    const docker = params.docker ? { docker: params.docker } : {};
    const build = await collectAsync(refusals, () =>
      buildProjectImage(project.dir, projectBuildOptions(params, { project, deployment, deploymentId, excludeDags: deployment.isDagDeployEnabled || remote, signal, emit, logger: ctx.logger })),
    );
    let image: PlannedImage | undefined;
    let tests: PlannedTests | undefined;
    if (build) {
      const info = await collectAsync(refusals, () => inspectImage({ imageName: build.imageId }, { ...docker, signal }));
      if (info) {
        image = { ...validatedImage(refusals, info, runtimeVersion, options, params.allowAirflow3Upgrade), reference: build.tag };
        tests = plannedTests(mode, params.force, info.runtimeVersion);
      }
    }
    return finishPlan(
      ctx,
      deployment,
      { deploymentId, deployType: 'IMAGE_AND_DAG', refusals, bundle, image, tests },
      { ...params, description: git?.description ?? params.description },
      requestOptions,
    );
  });
}
