/**
 * Reading an Astro API token the way the Astro CLI does: the JWT payload is decoded WITHOUT
 * verifying the signature (only Astro can verify it; we only need the claims to find the
 * organization and to fail early on an expired or non-API token). A user session token (no
 * `permissions` claim) is refused unless the caller names the organization explicitly; flows that
 * the CLI restricts to API tokens (CI/CD-enforced deployments) then refuse it themselves.
 */
import { AstroConfigError, ErrorCodes } from '../core/errors.js';

/** Claims the SDK reads from an Astro API token. */
export interface AstroTokenClaims {
  /** Entries such as `organizationId:<id>`, `workspaceId:<id>`, `deploymentId:<id>`. */
  permissions: string[];
  organizationId?: string;
  workspaceId?: string;
  deploymentId?: string;
  apiTokenId?: string;
  /** Expiry as a Unix time in seconds. */
  exp?: number;
  /**
   * True for Organization, Workspace and Deployment API tokens (they carry `permissions`). False
   * for user session tokens, which are only accepted together with an explicit `organizationId`.
   */
  isApiToken: boolean;
  /** All claims, for callers that need more. */
  raw: Record<string, unknown>;
}

function decodeBase64Url(segment: string): string {
  return Buffer.from(segment.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
}

/**
 * Decode the claims of an Astro API token. Throws {@link AstroConfigError}
 * (`ASTRO_CONFIG_INVALID_TOKEN`) when it is not a JWT or carries no `permissions` claim (the CLI's
 * test for "an Astro API token"), and `ASTRO_CONFIG_TOKEN_EXPIRED` when `exp` is in the past.
 *
 * @param now - current time in milliseconds (for tests). @default Date.now()
 */
export function readTokenClaims(
  token: string,
  now: number = Date.now(),
  options: { allowNonApiToken?: boolean } = {},
): AstroTokenClaims {
  const parts = token.split('.');
  let raw: Record<string, unknown>;
  try {
    if (parts.length !== 3 || !parts[1]) throw new Error('not three segments');
    raw = JSON.parse(decodeBase64Url(parts[1])) as Record<string, unknown>;
    if (!raw || typeof raw !== 'object') throw new Error('payload is not an object');
  } catch (cause) {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_INVALID_TOKEN,
      'The Astro API token is not a valid JWT. Create an Organization, Workspace or Deployment API token in the Astro UI and pass it as `token` or ASTRO_API_TOKEN.',
      { cause },
    );
  }
  const permissions = Array.isArray(raw.permissions) ? raw.permissions.filter((p): p is string => typeof p === 'string') : [];
  if (permissions.length === 0 && !options.allowNonApiToken) {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_INVALID_TOKEN,
      'The token does not appear to be an Astro API token (it has no `permissions` claim). Use an Organization, Workspace or Deployment API token, not a user login token.',
    );
  }
  const exp = typeof raw.exp === 'number' ? raw.exp : undefined;
  if (exp !== undefined && exp * 1000 <= now) {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_TOKEN_EXPIRED,
      `The Astro API token expired at ${new Date(exp * 1000).toISOString()}. Rotate it in the Astro UI and update ASTRO_API_TOKEN.`,
    );
  }
  const claims: AstroTokenClaims = { permissions, raw, isApiToken: permissions.length > 0 };
  for (const permission of permissions) {
    const sep = permission.indexOf(':');
    if (sep < 0) continue;
    const key = permission.slice(0, sep);
    const value = permission.slice(sep + 1);
    if (key === 'organizationId') claims.organizationId ??= value;
    else if (key === 'workspaceId') claims.workspaceId ??= value;
    else if (key === 'deploymentId') claims.deploymentId ??= value;
  }
  if (typeof raw.apiTokenId === 'string') claims.apiTokenId = raw.apiTokenId;
  if (exp !== undefined) claims.exp = exp;
  return claims;
}
