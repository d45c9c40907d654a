/**
 * Ids that go into API URL paths (organization, deployment, deploy, workspace ids) are checked
 * before any request: a value such as `..`, `a/b` or `x?y` would otherwise address another
 * resource than the one named (`GET /organizations/<org>/deployments/..` is
 * `GET /organizations/<org>/`), and control characters or whitespace are never part of an id.
 */
import { AstroConfigError, ErrorCodes } from '../core/errors.js';

/** Whitespace (Unicode included), control characters, and the characters that end or escape a path segment. */
const FORBIDDEN = /[\s\p{Cc}\p{Cf}/\\?#%]/u;

/**
 * `value` percent-encoded as one URL path segment, after checking it is a usable id. Throws
 * {@link AstroConfigError} `ASTRO_CONFIG_INVALID_OPTION` naming `name` for a value that is not a
 * string, is empty, is `.` or `..`, or contains `/`, `\`, `?`, `#`, `%`, whitespace or control
 * (or invisible format) characters.
 */
export function pathSegment(name: string, value: unknown): string {
  const problem =
    typeof value !== 'string'
      ? `must be a string (got ${value === null ? 'null' : typeof value})`
      : value === ''
        ? 'is empty'
        : value === '.' || value === '..'
          ? `cannot be "${value}"`
          : FORBIDDEN.test(value)
            ? 'contains a character that is never part of an Astro id (/, \\, ?, #, %, whitespace or a control character)'
            : undefined;
  if (problem !== undefined) {
    const shown = typeof value === 'string' ? ` ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)}` : '';
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `${name}${shown} ${problem}. Pass the id as Astro shows it (e.g. clxxxxxxxxxxxxxxxxxxxxxxx).`);
  }
  return encodeURIComponent(value as string);
}
