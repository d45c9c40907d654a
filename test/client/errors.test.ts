import { describe, expect, it } from 'vitest';
import {
  AstroApiError,
  AstroClient,
  AstroConfigError,
  AstroError,
  AstroSchemaError,
  ErrorCodes,
  isAstroError,
} from '../../src/index.js';
import { TestTokenMinter } from '../../src/testing/index.js';
import { startFake } from '../helpers/fake.js';

async function caught(p: Promise<unknown>): Promise<AstroError> {
  try {
    await p;
  } catch (e) {
    if (!isAstroError(e)) throw e;
    return e;
  }
  throw new Error('expected a rejection');
}

describe('configuration errors', () => {
  const minter = new TestTokenMinter('clorg1');

  it('needs a token', () => {
    expect(() => new AstroClient({ token: '' })).toThrow(AstroConfigError);
    try {
      new AstroClient({ token: '   ' });
    } catch (e) {
      expect(isAstroError(e, 'ASTRO_CONFIG_MISSING_TOKEN')).toBe(true);
      expect((e as Error).message).toMatch(/ASTRO_API_TOKEN/);
    }
  });

  it('reads ASTRO_API_TOKEN and ASTRO_API_URL from the environment', () => {
    const prev = { ...process.env };
    try {
      process.env.ASTRO_API_TOKEN = minter.mint();
      process.env.ASTRO_API_URL = 'http://127.0.0.1:9/v1';
      const client = new AstroClient();
      expect(client.organizationId).toBe('clorg1');
    } finally {
      process.env = prev;
    }
  });

  it('rejects a value that is not a JWT, an expired token and a token without organization', () => {
    const notJwt = (() => { try { new AstroClient({ token: 'definitely-not-a-jwt' }); } catch (e) { return e; } })();
    expect(isAstroError(notJwt, 'ASTRO_CONFIG_INVALID_TOKEN')).toBe(true);
    const expired = (() => { try { new AstroClient({ token: minter.mint({ expiresInSeconds: -10 }) }); } catch (e) { return e; } })();
    expect(isAstroError(expired, 'ASTRO_CONFIG_TOKEN_EXPIRED')).toBe(true);
    const userToken = minter.mint({ permissions: [] });
    const noOrg = (() => { try { new AstroClient({ token: userToken }); } catch (e) { return e; } })();
    expect(isAstroError(noOrg, 'ASTRO_CONFIG_INVALID_TOKEN')).toBe(true);
    const wsOnly = minter.mint({ permissions: ['workspaceId:clws'] });
    const missingOrg = (() => { try { new AstroClient({ token: wsOnly }); } catch (e) { return e; } })();
    expect(isAstroError(missingOrg, 'ASTRO_CONFIG_MISSING_ORGANIZATION')).toBe(true);
    // A user token is accepted when the organization is named explicitly.
    expect(new AstroClient({ token: userToken, organizationId: 'clorg1' }).organizationId).toBe('clorg1');
  });

  it('validates numeric options and baseUrl', () => {
    const token = minter.mint();
    expect(() => new AstroClient({ token, timeoutMs: -1 })).toThrow(/timeoutMs/);
    expect(() => new AstroClient({ token, baseUrl: 'ftp://x' })).toThrow(/baseUrl/);
  });

  it('validates retry options (client and per call) into ASTRO_CONFIG_INVALID_OPTION, and names the old maxRetries', async () => {
    const token = minter.mint();
    const bad: unknown[] = [{ maxRetries: -1 }, { initialDelayMs: Number.NaN }, { maxDelayMs: Infinity }, { maxRetryAfterMs: '5' }, { retries: 2 }, 3];
    for (const retry of bad) {
      const err = (() => { try { new AstroClient({ token, retry: retry as never }); } catch (e) { return e; } })();
      expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
      expect((err as Error).message).toMatch(/retry/);
    }
    const old = (() => { try { new AstroClient({ token, maxRetries: 2 } as never); } catch (e) { return e; } })();
    expect(isAstroError(old, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
    expect((old as Error).message).toMatch(/retry: \{ maxRetries \}/);
    expect(new AstroClient({ token, retry: { maxRetries: 0, initialDelayMs: 0 } }).toJSON()).toMatchObject({
      retry: { maxRetries: 0, initialDelayMs: 0, maxDelayMs: 8000, maxRetryAfterMs: 60_000 },
    });
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const perCall = await caught(client.deployments.get('cldep1', { retry: { maxDelayMs: -5 } }));
    expect(perCall.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(perCall.message).toMatch(/request\.retry\.maxDelayMs/);
    expect(astro.requests).toHaveLength(0);
  });
});

describe('API error mapping (real HTTP against the fake)', () => {
  it('maps 404 with the API error body', async () => {
    const { client } = await startFake();
    const err = await caught(client.deployments.get('clnope'));
    expect(err).toBeInstanceOf(AstroApiError);
    const api = err as AstroApiError;
    expect(api.code).toBe(ErrorCodes.API_NOT_FOUND);
    expect(api.status).toBe(404);
    expect(api.requestId).toMatch(/[0-9a-f-]{36}/);
    expect(api.apiMessage).toBe('Deployment clnope not found');
    expect(api.message).toMatch(/Check the deployment ID/);
    expect(api.retryable).toBe(false);
  });

  it('maps 401 for a token the server does not accept and 403 for another organization', async () => {
    const { astro } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const stranger = new TestTokenMinter(astro.organizationId).mint();
    const c1 = new AstroClient({ baseUrl: astro.baseUrl, token: stranger });
    expect((await caught(c1.deployments.get('cldep1'))).code).toBe('ASTRO_API_UNAUTHORIZED');
    const other = astro.mintToken({ organizationId: 'clotherorg' });
    const c2 = new AstroClient({ baseUrl: astro.baseUrl, token: other, organizationId: astro.organizationId });
    const forbidden = await caught(c2.deployments.get('cldep1'));
    expect(forbidden.code).toBe('ASTRO_API_FORBIDDEN');
    expect((forbidden as AstroApiError).status).toBe(403);
  });

  it('surfaces fieldErrors of a 400', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const err = (await caught(client.deploys.create('cldep1', { type: 'NOPE' as never }))) as AstroApiError;
    expect(err.code).toBe('ASTRO_API_BAD_REQUEST');
    expect(err.fieldErrors).toEqual([expect.objectContaining({ field: 'type' })]);
  });

  it('maps 5xx to a retryable server error after retries are spent', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { retry: { maxRetries: 1 } });
    astro.fail({ route: 'deployments.get', times: Infinity, action: { kind: 'status', status: 502, body: 'bad gateway' } });
    const err = (await caught(client.deployments.get('cldep1'))) as AstroApiError;
    expect(err.code).toBe('ASTRO_API_SERVER_ERROR');
    expect(err.retryable).toBe(true);
    expect(err.apiMessage).toBeUndefined();
    expect(astro.requestsFor('deployments.get')).toHaveLength(2);
  });

  it('raises ASTRO_API_SCHEMA naming the field when a response changes shape', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({
      route: 'deployments.get',
      action: { kind: 'status', status: 200, body: { id: 'cldep1', name: 'x', organizationId: 'o', workspaceId: 'w', type: 'STANDARD', status: 'HEALTHY', isCicdEnforced: false } },
    });
    const err = await caught(client.deployments.get('cldep1'));
    expect(err).toBeInstanceOf(AstroSchemaError);
    expect((err as AstroSchemaError).fields).toEqual(['isDagDeployEnabled']);
    expect(err.message).toMatch(/isDagDeployEnabled/);
  });

  it('raises ASTRO_API_SCHEMA when a proxy answers with HTML', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({ route: 'deployments.get', action: { kind: 'status', status: 200, body: '<html>login</html>' } });
    const err = await caught(client.deployments.get('cldep1'));
    expect(err.code).toBe('ASTRO_API_SCHEMA');
  });

  it('maps a refused connection to ASTRO_CONNECTION', async () => {
    const token = new TestTokenMinter('clorg1').mint();
    const client = new AstroClient({ baseUrl: 'http://127.0.0.1:1/v1', token, retry: { maxRetries: 0 } });
    const err = await caught(client.deployments.get('cldep1'));
    expect(err.code).toBe('ASTRO_CONNECTION');
    expect(err.retryable).toBe(true);
  });

  it('maps a stalled server to ASTRO_TIMEOUT after timeoutMs', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { timeoutMs: 200, retry: { maxRetries: 0 } });
    astro.fail({ route: 'deployments.get', action: { kind: 'stall' } });
    const started = Date.now();
    const err = await caught(client.deployments.get('cldep1'));
    expect(err.code).toBe('ASTRO_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('maps a caller abort to ASTRO_ABORTED with the reason as cause', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({ route: 'deployments.get', action: { kind: 'stall' } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user pressed ctrl-c')), 50);
    const err = await caught(client.deployments.get('cldep1', { signal: controller.signal }));
    expect(err.code).toBe('ASTRO_ABORTED');
    expect(err.name).toBe('AstroAbortError');
    expect((err.cause as Error).message).toBe('user pressed ctrl-c');
  });

  it('keeps instanceof, name and code consistent across the family', async () => {
    const { client } = await startFake();
    const err = await caught(client.deployments.get('clmissing'));
    expect(err).toBeInstanceOf(AstroError);
    expect(err).toBeInstanceOf(AstroApiError);
    expect(err).not.toBeInstanceOf(AstroSchemaError);
    expect(err.name).toBe('AstroApiError');
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({ code: 'ASTRO_API_NOT_FOUND', status: 404 });
  });
});
