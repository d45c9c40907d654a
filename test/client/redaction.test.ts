import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { AstroClient, AstroError, ErrorCodes, redact, type ClientEvent, type Logger } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function chainText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let i = 0; e && i < 10; i++) {
    parts.push(String(e), (e as Error).stack ?? '', JSON.stringify(e) ?? '', inspect(e, { depth: 5 }));
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join('\n');
}

describe('secrets never leak', () => {
  it('keeps the token out of errors, cause chains, events and logs', async () => {
    const lines: string[] = [];
    const logger: Logger = {
      error: (m, d) => lines.push(m + JSON.stringify(d ?? {})),
      warn: (m, d) => lines.push(m + JSON.stringify(d ?? {})),
      info: (m, d) => lines.push(m + JSON.stringify(d ?? {})),
      debug: (m, d) => lines.push(m + JSON.stringify(d ?? {})),
    };
    const { astro } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, logger, logLevel: 'debug', retry: { maxRetries: 1 } });
    // A server that echoes the token back in its error message must not get it into our error.
    astro.fail({
      route: 'deployments.get',
      times: 2,
      action: { kind: 'status', status: 500, body: { message: `bad token ${astro.token} at ?sig=abcdefSECRET123`, requestId: 'r1', statusCode: 500 } },
    });
    const events: ClientEvent[] = [];
    const err = await client.setDagDeploy('cldep1', false, { onEvent: (e) => events.push(e) }).catch((e) => e);
    expect(err).toBeInstanceOf(AstroError);
    const texts = [chainText(err), JSON.stringify(events), lines.join('\n')];
    for (const t of texts) {
      expect(t).not.toContain(astro.token);
      expect(t).not.toContain(astro.token.split('.')[2]!);
      expect(t).not.toContain('abcdefSECRET123');
    }
    expect(err.message).toContain('[REDACTED]');
    expect(lines.length).toBeGreaterThan(0);
  });

  it('keeps a token echoed in fieldErrors out of err.fieldErrors and err.toJSON()', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const echoed = `Bearer ${astro.token}`;
    astro.fail({
      route: 'deployments.get',
      action: {
        kind: 'status',
        status: 400,
        body: { message: 'bad header', requestId: 'r1', statusCode: 400, fieldErrors: [{ code: `invalid ${echoed}`, field: `authorization=${astro.token}`, message: `rejected ${echoed}` }] },
      },
    });
    const err = await client.deployments.get('cldep1').catch((e) => e);
    expect(err.code).toBe('ASTRO_API_BAD_REQUEST');
    for (const text of [JSON.stringify(err.fieldErrors), JSON.stringify(err.toJSON()), chainText(err)]) {
      expect(text).not.toContain(astro.token);
      expect(text).not.toContain(astro.token.split('.')[2]!);
    }
    // Still readable: what was wrong, and where.
    expect(err.fieldErrors).toEqual([{ code: 'invalid Bearer [REDACTED]', field: 'authorization=[REDACTED]', message: 'rejected Bearer [REDACTED]' }]);
  });

  it('redacts a token inside a wrapped cause', () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl';
    const cause = new Error(`upstream said Authorization: Bearer ${token}`);
    const err = new AstroError(ErrorCodes.CONNECTION, `failed with ${token}`, { cause });
    expect(chainText(err)).not.toContain(token);
    expect(redact(`https://acct.blob.core.windows.net/c/b?sv=2023-01-03&sig=abc%2Bdef%3D&se=2026`)).toBe(
      'https://acct.blob.core.windows.net/c/b?sv=2023-01-03&sig=[REDACTED]&se=2026',
    );
  });
});
