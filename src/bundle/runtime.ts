/**
 * Choosing the `.airflowignore` syntax from the target deployment's version.
 */
import type { IgnoreSyntax } from './types.js';

/**
 * The default ignore syntax of an Airflow version: `glob` from Airflow 3, `regexp` before.
 * Unknown or unparseable versions give `glob` (the current default).
 */
export function ignoreSyntaxForAirflow(airflowVersion: string | undefined): IgnoreSyntax {
  const m = /^\s*v?(\d+)\./.exec(airflowVersion ?? '');
  if (!m) return 'glob';
  return Number(m[1]) >= 3 ? 'glob' : 'regexp';
}

/**
 * The default ignore syntax of an Astro Runtime version.
 *
 * Astro Runtime has had two version formats: semantic versions (`3.0.0` ... `12.x.y`), all of
 * which ship Airflow 2 (so `regexp`), and, from Airflow 3 on, `X.Y-Z` where `X.Y` is the Airflow
 * version and `Z` the runtime build (`3.0-1`, `3.1-2`; so `glob`). Image suffixes such as `-base`
 * are ignored. Unknown or unparseable versions give `glob`. A deployment that overrides
 * `AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX` needs the syntax passed explicitly instead.
 *
 * @example ignoreSyntaxForRuntime('12.5.0') // 'regexp'
 * @example ignoreSyntaxForRuntime('3.0-4')  // 'glob'
 */
export function ignoreSyntaxForRuntime(runtimeVersion: string | undefined): IgnoreSyntax {
  const v = (runtimeVersion ?? '').trim().replace(/^v/, '');
  const airflowStyle = /^(\d+)\.(\d+)-(\d+)/.exec(v);
  if (airflowStyle) return Number(airflowStyle[1]) >= 3 ? 'glob' : 'regexp';
  if (/^\d+\.\d+\.\d+/.test(v)) return 'regexp';
  return 'glob';
}
