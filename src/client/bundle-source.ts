/**
 * Where a deploy's DAG bundle comes from: a dags folder the flow bundles (and removes afterwards),
 * or a bundle the caller made once with `createBundle` and ships as it is, to one deployment or
 * many (left in place: its maker cleans it up). A bundle applies `.airflowignore` in one syntax,
 * so it is refused for a deployment whose Airflow applies the other.
 */
import { stat } from 'node:fs/promises';
import type { BundleEvent, BundleResult, IgnoreSyntax } from '../bundle/index.js';
import { AstroConfigError, BundleError, ErrorCodes } from '../core/errors.js';
import { bundleDags, type DeployBundleOptions } from './deploy-common.js';

/** Options that shape a bundle: they apply when the flow bundles a folder, and cannot apply to a bundle already made. */
export const SHAPING_OPTIONS = ['prefix', 'defaultExcludes', 'exclude', 'hiddenImports', 'ignoredNonPython', 'allowEmpty', 'compressionLevel'] as const;

/** A flow's DAG source: `dagsDir` or `bundle`, and the bundle options. */
export interface DagsSourceParams extends DeployBundleOptions {
  dagsDir?: string | undefined;
  bundle?: BundleResult | undefined;
}

/**
 * Check a flow's DAG source before anything runs: with `required`, exactly one of `dagsDir` and
 * `bundle`; never both. A bundle must be a file (`output: { type: 'file' }`, the default) and comes
 * without the options that shape a bundle (`syntax` may be given: it names the target's syntax).
 * @throws AstroConfigError `ASTRO_CONFIG_INVALID_OPTION`
 */
export function checkDagsSource(params: DagsSourceParams, required: boolean): void {
  const invalid = (message: string) => new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, message);
  if (params.dagsDir !== undefined && params.bundle !== undefined) throw invalid('Pass dagsDir or bundle, not both.');
  if (required && params.dagsDir === undefined && params.bundle === undefined) throw invalid('Pass dagsDir (a dags folder) or bundle (a bundle made with createBundle).');
  const bundle = params.bundle;
  if (bundle === undefined) return;
  if (!bundle || typeof bundle !== 'object' || !bundle.manifest || typeof bundle.bytes !== 'number') throw invalid('bundle must be what createBundle resolved with.');
  if (!bundle.path) {
    throw invalid("bundle was written to a stream, so there is no file to upload: make it with createBundle's default output ({ type: 'file' }).");
  }
  const shaping = SHAPING_OPTIONS.filter((k) => params[k] !== undefined);
  if (shaping.length) {
    throw invalid(`${shaping.join(', ')} shape a bundle while it is made; the bundle given is already made. Pass them to createBundle, or pass dagsDir instead of bundle.`);
  }
}

/**
 * Refuse `bundle` for a target whose Airflow applies `.airflowignore` in another syntax than the
 * bundle did: files Airflow ignores would ship, or files it parses would be left out.
 * @throws BundleError `ASTRO_BUNDLE_SYNTAX_MISMATCH`
 */
export function checkBundleSyntax(bundle: BundleResult, target: { deploymentId: string; syntax: IgnoreSyntax; runtimeVersion?: string | undefined; explicit: boolean }): void {
  const made = bundle.manifest.syntax;
  if (made === target.syntax) return;
  const why = target.explicit
    ? `the syntax given for the deployment is '${target.syntax}'`
    : `its Astro Runtime ${target.runtimeVersion ?? '(unknown version)'} applies '${target.syntax}' (Airflow ${target.syntax === 'glob' ? '3' : '2'}'s default)`;
  throw new BundleError(
    ErrorCodes.BUNDLE_SYNTAX_MISMATCH,
    `The bundle of '${bundle.root}' applied .airflowignore in the '${made}' syntax, but deployment ${target.deploymentId} parses DAGs with the '${target.syntax}' syntax (${why}): it would ship files its Airflow ignores, or leave out files it parses. Make a bundle with syntax: '${target.syntax}' for it (ignoreSyntaxForRuntime gives the syntax of a runtime), or pass syntax: '${made}' if the deployment sets AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=${made}.`,
    bundle.root,
  );
}

/**
 * The bundle a flow ships to a deployment whose syntax is `target.syntax`: the caller's `bundle`
 * after the syntax check and a check that its file is still there as it was made (`owned` false:
 * never removed here), or a bundle of `dagsDir` made now (`owned` true: the flow removes it).
 * @throws BundleError `ASTRO_BUNDLE_SYNTAX_MISMATCH`, `ASTRO_BUNDLE_IO` (the bundle file is gone
 *   or changed), and the bundling errors of `createBundle`.
 */
export async function dagsBundle(
  params: DagsSourceParams,
  target: { deploymentId: string; syntax: IgnoreSyntax; runtimeVersion?: string | undefined },
  signal: AbortSignal | undefined,
  emit: (e: BundleEvent) => void,
): Promise<{ bundle: BundleResult; owned: boolean }> {
  const given = params.bundle;
  if (!given) return { bundle: await bundleDags(params.dagsDir!, params, target.syntax, signal, emit), owned: true };
  checkBundleSyntax(given, { ...target, explicit: params.syntax !== undefined });
  const size = await stat(given.path!).then(
    (s) => (s.isFile() ? s.size : -1),
    () => -1,
  );
  if (size !== given.bytes) {
    throw new BundleError(
      ErrorCodes.BUNDLE_IO,
      `The bundle file '${given.path}' ${size < 0 ? 'is gone' : `has ${size} bytes, not the ${given.bytes} it was made with`} (was it cleaned up?); nothing was created. Make the bundle again.`,
      given.path,
    );
  }
  return { bundle: given, owned: false };
}
