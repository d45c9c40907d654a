/**
 * Astro Runtime version rules.
 *
 * Two version formats exist and both appear on the `io.astronomer.docker.runtime.version` label:
 * - the old semver format (`12.5.0`), which always means Airflow 2;
 * - the new `X.Y-Z[.-prerelease]` format (`3.1-17`), where X.Y is the Airflow major.minor and Z
 *   Astronomer's patch number.
 * Every new-format version sorts above every old-format one (the new format started after 12.x).
 * These rules mirror what the Astro CLI enforces before it pushes, so a deploy the CLI would refuse
 * is refused here too, before any byte moves.
 */

/** Label holding the Astro Runtime version of an image. */
export const RUNTIME_VERSION_LABEL = 'io.astronomer.docker.runtime.version';
/** Label holding the Airflow version of an image (fallback information only). */
export const AIRFLOW_VERSION_LABEL = 'io.astronomer.docker.airflow.version';

const NEW_FORMAT = /^(\d+)\.(\d+)-(\d+)(?:[.-](.+))?$/;
// Full semver plus the Go "semver" package's shorthands (`v1`, `v1.2`) that the CLI accepts.
const SEMVER = /^(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?$/;

/** A runtime version taken apart. */
export interface ParsedRuntimeVersion {
  /** The original string. */
  raw: string;
  /** `new` for `X.Y-Z`, `old` for semver. */
  format: 'new' | 'old';
  /** Numeric core as major, minor, patch (for the new format: Airflow major, Airflow minor, Astronomer patch). */
  core: [number, number, number];
  /** Pre-release identifiers, empty for a release. */
  prerelease: string[];
  /** Airflow major version this runtime ships: `2` for every old-format version. */
  airflowMajor: number;
}

/** Parse a runtime version, or return undefined when it is in neither format. */
export function parseRuntimeVersion(version: string): ParsedRuntimeVersion | undefined {
  const raw = version.trim();
  const v = raw.startsWith('v') ? raw.slice(1) : raw;
  const n = NEW_FORMAT.exec(v);
  if (n) {
    const prerelease = n[4] ? n[4].split('.') : [];
    if (!prerelease.every((p) => /^[0-9A-Za-z-]+$/.test(p))) return undefined;
    const core: [number, number, number] = [Number(n[1]), Number(n[2]), Number(n[3])];
    return { raw, format: 'new', core, prerelease, airflowMajor: core[0] };
  }
  const s = SEMVER.exec(v);
  if (!s) return undefined;
  // Go's semver treats `v1` and `v1.2` as shorthands but refuses a pre-release on them.
  if ((s[2] === undefined || s[3] === undefined) && s[4] !== undefined) return undefined;
  const core: [number, number, number] = [Number(s[1]), Number(s[2] ?? 0), Number(s[3] ?? 0)];
  return { raw, format: 'old', core, prerelease: s[4] ? s[4].split('.') : [], airflowMajor: 2 };
}

function comparePrerelease(a: string[], b: string[]): number {
  if (a.length === 0 && b.length === 0) return 0;
  if (a.length === 0) return 1; // a release sorts above its pre-releases
  if (b.length === 0) return -1;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn) {
      const d = Number(x) - Number(y);
      if (d !== 0) return Math.sign(d);
    } else if (xn !== yn) {
      return xn ? -1 : 1; // numeric identifiers sort below alphanumeric ones
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/**
 * Compare two runtime versions: -1, 0 or 1. Invalid versions sort below valid ones and equal to
 * each other; a new-format version is always above an old-format one.
 */
export function compareRuntimeVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = parseRuntimeVersion(a);
  const pb = parseRuntimeVersion(b);
  if (!pa && !pb) return 0;
  if (!pa) return -1;
  if (!pb) return 1;
  if (pa.format !== pb.format) return pa.format === 'new' ? 1 : -1;
  for (let i = 0; i < 3; i++) {
    const d = pa.core[i]! - pb.core[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return comparePrerelease(pa.prerelease, pb.prerelease) as -1 | 0 | 1;
}

/** The Airflow major version a runtime version ships, or undefined for an unparseable version. */
export function airflowMajorOf(runtimeVersion: string): number | undefined {
  return parseRuntimeVersion(runtimeVersion)?.airflowMajor;
}

/** The lowest deployment runtime from which an Airflow 2 to 3 upgrade is allowed. */
export const MIN_RUNTIME_FOR_AIRFLOW3_UPGRADE = '12.0.0';

/** Why a runtime version was refused, as a machine-readable reason. */
export type RuntimeRuleViolation =
  | { rule: 'downgrade'; imageVersion: string; deploymentVersion: string }
  | { rule: 'unsupported'; imageVersion: string; allowed: string[] }
  | { rule: 'airflow3-too-old'; imageVersion: string; deploymentVersion: string }
  | { rule: 'airflow3-not-confirmed'; imageVersion: string; deploymentVersion: string };

/** Inputs of {@link checkRuntimeRules}. */
export interface RuntimeRules {
  /** The deployment's current runtime; when absent every check is skipped (as the CLI does). */
  deploymentRuntimeVersion?: string;
  /** Versions from the organization's deployment options (`runtimeReleases[].version`); when absent, not checked. */
  allowedRuntimeVersions?: string[];
  /** Allow moving an Airflow 2 deployment to an Airflow 3 image (the CLI's `--force-upgrade-to-af3`). @default false */
  allowAirflow3Upgrade?: boolean;
}

/**
 * Check an image's runtime version against the deployment, in the CLI's order: no downgrade, listed
 * in the deployment options, and the Airflow 2 to 3 rule. Returns the first violation, if any.
 */
export function checkRuntimeRules(imageVersion: string, rules: RuntimeRules): RuntimeRuleViolation | undefined {
  const current = rules.deploymentRuntimeVersion?.trim();
  if (!current) return undefined;
  if (compareRuntimeVersions(imageVersion, current) < 0) {
    return { rule: 'downgrade', imageVersion, deploymentVersion: current };
  }
  if (rules.allowedRuntimeVersions !== undefined) {
    const listed = rules.allowedRuntimeVersions.some((v) => compareRuntimeVersions(imageVersion, v) === 0);
    if (!listed) return { rule: 'unsupported', imageVersion, allowed: [...rules.allowedRuntimeVersions] };
  }
  if (airflowMajorOf(current) === 2 && airflowMajorOf(imageVersion) === 3) {
    if (compareRuntimeVersions(current, MIN_RUNTIME_FOR_AIRFLOW3_UPGRADE) < 0) {
      return { rule: 'airflow3-too-old', imageVersion, deploymentVersion: current };
    }
    if (!rules.allowAirflow3Upgrade) return { rule: 'airflow3-not-confirmed', imageVersion, deploymentVersion: current };
  }
  return undefined;
}
