/**
 * Test tokens for the fake Astro server: real JWTs (HS256, signed with the fake's own secret) that
 * carry the same claims as Astro API tokens, so the SDK's token parsing runs unchanged.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** Claims of a minted test token. */
export interface TestTokenOptions {
  /** @default the fake's organization */
  organizationId?: string;
  /** Adds `workspaceId:<id>` to `permissions` (a Workspace token: the fake Astro lets it reach that workspace's deployments only). */
  workspaceId?: string;
  /** Adds `deploymentId:<id>` to `permissions` (a Deployment token: the fake Astro lets it reach that deployment only). */
  deploymentId?: string;
  /** Seconds until expiry; negative for an already expired token. @default 3600 */
  expiresInSeconds?: number;
  /** Replace `permissions` entirely (e.g. `[]` to mint a non-API token). */
  permissions?: string[];
}

const b64url = (input: Buffer | string) => Buffer.from(input).toString('base64url');

/** Signs and verifies test tokens with one secret. */
export class TestTokenMinter {
  private readonly secret = randomBytes(32);

  constructor(private readonly defaultOrganizationId: string) {}

  /** Mint a token. */
  mint(options: TestTokenOptions = {}): string {
    const organizationId = options.organizationId ?? this.defaultOrganizationId;
    const permissions = options.permissions ?? [
      `organizationId:${organizationId}`,
      ...(options.workspaceId ? [`workspaceId:${options.workspaceId}`] : []),
      ...(options.deploymentId ? [`deploymentId:${options.deploymentId}`] : []),
    ];
    const now = Math.floor(Date.now() / 1000);
    const payload = {
      iss: 'https://fake-astro.invalid/',
      sub: `apitoken-${randomBytes(6).toString('hex')}`,
      apiTokenId: `cltok${randomBytes(8).toString('hex')}`,
      permissions,
      iat: now,
      exp: now + (options.expiresInSeconds ?? 3600),
      isAstronomerGenerated: true,
      version: '1',
    };
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64url(JSON.stringify(payload));
    const sig = createHmac('sha256', this.secret).update(`${head}.${body}`).digest('base64url');
    return `${head}.${body}.${sig}`;
  }

  /** The token's claims if this minter signed it, else undefined. */
  verify(token: string): { permissions: string[]; exp: number } | undefined {
    const [head, body, sig] = token.split('.');
    if (!head || !body || !sig) return undefined;
    const expected = createHmac('sha256', this.secret).update(`${head}.${body}`).digest('base64url');
    if (expected !== sig) return undefined;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { permissions: string[]; exp: number };
    } catch {
      return undefined;
    }
  }
}
