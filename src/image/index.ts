/**
 * `astro-deploy-sdk/image`: build an Astro project into a linux/amd64 image, check an image
 * before deploying it to Astro, push it to the deployment's registry (natively over the OCI
 * distribution API, or through the Docker daemon), and run the project's tests (the DAG parse
 * check, pytest) in a container of it.
 *
 * @packageDocumentation
 */
export type {
  ImageSource,
  ImageArchive,
  ImagePlatform,
  ImageInfo,
  DockerOptions,
  RegistryAuth,
  PushTarget,
  PushedLayer,
  PushResult,
  ImageEvent,
} from './types.js';
export type {
  DockerLike,
  DockerImageLike,
  DockerContainerLike,
  DockerModemLike,
  DockerImageInspect,
  DockerContainerCreateOptions,
} from './docker-like.js';
export { inspectImage, validateImage, assertValid, ASTRO_PLATFORM, type InspectOptions, type ValidateRules } from './inspect.js';
export {
  RUNTIME_VERSION_LABEL,
  AIRFLOW_VERSION_LABEL,
  MIN_RUNTIME_FOR_AIRFLOW3_UPGRADE,
  parseRuntimeVersion,
  compareRuntimeVersions,
  airflowMajorOf,
  checkRuntimeRules,
  type ParsedRuntimeVersion,
  type RuntimeRules,
  type RuntimeRuleViolation,
} from './runtime.js';
export {
  openImageArchive,
  classifySource as classifyImageSource,
  type OpenImageArchiveOptions,
  type ClassifiedSource as ClassifiedImageSource,
} from './source.js';
export { MediaTypes } from './layout.js';
export { pushImage, type PushImageOptions } from './push.js';
export { pushNative, splitRepository, type NativePushOptions } from './push-native.js';
export { pushDaemon, daemonPushError, type DaemonPushOptions } from './push-daemon.js';
export { LayerCache, defaultLayerCache, type LayerCacheOptions, type CachedLayer } from './layer-cache.js';
export {
  runDagParseCheck,
  parseEnvFile,
  AIRFLOW_HOME,
  DAG_INTEGRITY_TEST,
  type DagParseCheckOptions,
  type DagParseCheckResult,
} from './parse-check.js';
export {
  buildProjectImage,
  buildKitSupport,
  defaultProjectTag,
  dockerfileNeedsBuildKit,
  BUILD_PLATFORM,
  type BuildProjectImageOptions,
  type BuildProjectImageResult,
  type BuildEvent,
  type BuildSecretSource,
  type ImageBuilder,
  type BuildStep,
  type BuildStepStatus,
} from './build.js';
export {
  createBuildContext,
  listBuildContext,
  readDockerignore,
  parseDockerignore,
  contextFilter,
  patternSyntaxError,
  type BuildContextOptions,
  type BuildContextStats,
  type BuildContextEntry,
  type BuildContextStream,
  type ContextFilter,
} from './build-context.js';
export {
  runProjectTests,
  skippedTests,
  suitesOf,
  PARSE_MIN_RUNTIME,
  PROJECT_TEST_DIRS,
  type ProjectTestsMode,
  type ProjectTestSuite,
  type ProjectTestsOptions,
  type ProjectTestsEvent,
  type ProjectTestsResult,
  type ProjectSuiteResult,
  type ProjectTestsSkipReason,
} from './project-tests.js';
export {
  readAstroProject,
  readProjectConfig,
  dockerfileBaseImages,
  shouldPullBaseImages,
  DEFAULT_DOCKERFILE,
  PROJECT_CONFIG_FILE,
  ASTRO_BASE_IMAGE_PREFIXES,
  type AstroProject,
  type ProjectConfig,
} from './project.js';
