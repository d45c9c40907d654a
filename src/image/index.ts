/**
 * `astro-deploy-sdk/image`: check an image before deploying it to Astro, push it to the
 * deployment's registry (natively over the OCI distribution API, or through the Docker daemon),
 * and run the DAG parse check in a container of it.
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
