/**
 * `astro-deploy-sdk/bundle`: everything between a dags folder on disk and the bytes of the
 * `.tar.gz` a DAG deploy uploads.
 *
 * - {@link scanDags} decides what goes into the bundle, applying `.airflowignore` exactly as
 *   Airflow does (both syntaxes), plus safe default excludes, the symlink policy and the
 *   hidden-import guard.
 * - {@link createBundle} streams a deterministic gzip'd tar of it with a manifest and fingerprint.
 * - {@link ignoreSyntaxForRuntime} / {@link ignoreSyntaxForAirflow} pick the syntax for a target.
 *
 * @packageDocumentation
 */
export { createBundle } from './create-bundle.js';
export { scanDags, IgnorePatternError, DEFAULT_EXCLUDES, IGNORE_FILE } from './scan.js';
export { ignoreSyntaxForRuntime, ignoreSyntaxForAirflow } from './runtime.js';
export { fingerprint } from './manifest.js';
export type {
  IgnoreSyntax,
  RuleSource,
  BundleWarningCode,
  BundleWarning,
  ExcludedPath,
  KeptPath,
  BundleEntry,
  ScanOptions,
  ScanResult,
  BundleOutput,
  CreateBundleOptions,
  BundleManifestFile,
  BundleManifest,
  BundleResult,
  BundleScanCompleteEvent,
  BundleProgressEvent,
  BundleWarningEvent,
  BundleCompleteEvent,
  BundleEvent,
} from './types.js';
