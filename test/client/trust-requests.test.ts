/**
 * Issue #15 ("Trust"), requests: every id that goes into a URL path is checked before any request
 * (a `..` reached `GET /organizations/<org>/`), and a 431 says what to do.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { AstroClient, AstroConfigError, isAstroError } from '../../src/index.js';
import { createFakeAstro, type FakeAstroOptions } from '../../src/testing/index.js';

/** A fake Astro for one test and a client with the default options. */
async function startFake(options: FakeAstroOptions = {}) {
  const astro = await createFakeAstro(options);
  onTestFinished(() => astro.close());
  return { astro, client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }) };
}

const BAD_SEGMENTS: Array<[string, string]> = [
  ['empty', ''],
  ['a slash', 'cldep1/deploys'],
  ['only a slash', '/'],
  ['dot-dot', '..'],
  ['dot', '.'],
  ['a question mark', 'cldep1?x=1'],
  ['a hash', 'cldep1#x'],
  ['a percent sign', 'cldep1%2F..'],
  ['a space', 'cl dep1'],
  ['a trailing newline', 'cldep1\n'],
  ['a tab', 'cl\tdep1'],
  ['a NUL', 'cl\u0000dep1'],
  ['a DEL', 'cl\u007fdep1'],
  ['a non-breaking space', 'cl\u00a0dep1'],
  ['a backslash', 'cldep1\\..'],
];

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('path parameters are validated before any request', () => {
  for (const [label, bad] of BAD_SEGMENTS) {
    it(`refuses an id with ${label}`, async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['deployments.get', () => client.deployments.get(bad)],
        ['deployments.update', () => client.deployments.update(bad, {})],
        ['deploys.create', () => client.deploys.create(bad, { type: 'DAG_ONLY' })],
        ['deploys.get (deployId)', () => client.deploys.get('cldep1', bad)],
        ['deploys.list', () => client.deploys.list(bad)],
        ['deploys.finalize (deployId)', () => client.deploys.finalize('cldep1', bad, { dagTarballVersion: '' })],
        ['setDagDeploy', () => client.setDagDeploy(bad, true)],
        ['waitForRollout', () => client.waitForRollout({ deploymentId: bad, timeoutMs: 1000 })],
      ];
      for (const [name, call] of calls) {
        const err = await rejection(call());
        expect(err, name).toBeInstanceOf(AstroConfigError);
        expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION'), name).toBe(true);
        expect((err as Error).message, name).toMatch(/deploymentId|deployId/);
      }
      expect(astro.requests).toEqual([]);
    });
  }

  it('refuses a bad organizationId at construction', async () => {
    const { astro } = await startFake();
    for (const [label, bad] of BAD_SEGMENTS) {
      let err: unknown;
      try {
        new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, organizationId: bad });
      } catch (e) {
        err = e;
      }
      expect(err, label).toBeInstanceOf(AstroConfigError);
      // An empty organizationId names no organization.
      if (bad === '') {
        expect(isAstroError(err, 'ASTRO_CONFIG_MISSING_ORGANIZATION'), label).toBe(true);
        continue;
      }
      expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION'), label).toBe(true);
      expect((err as Error).message, label).toMatch(/organizationId/);
    }
    // A token naming an unusable organization is refused the same way.
    const odd = astro.mintToken({ permissions: ['organizationId:..'] });
    let err: unknown;
    try {
      new AstroClient({ baseUrl: astro.baseUrl, token: odd });
    } catch (e) {
      err = e;
    }
    expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
    expect(astro.requests).toEqual([]);
  });

  it('still accepts ordinary ids (letters, digits, - _ ~ and dots inside)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }, { id: 'cl-dep_2.x~y' }] });
    await expect(client.deployments.get('cldep1')).resolves.toMatchObject({ id: 'cldep1' });
    await expect(client.deployments.get('cl-dep_2.x~y')).resolves.toMatchObject({ id: 'cl-dep_2.x~y' });
    expect(astro.requests).toHaveLength(2);
  });
});

describe('HTTP 431', () => {
  it('explains that the request headers (most likely the token) were too large', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({ route: 'deployments.get', action: { kind: 'status', status: 431, body: '' } });
    const err = await rejection(client.deployments.get('cldep1'));
    expect(isAstroError(err, 'ASTRO_API_ERROR')).toBe(true);
    expect(err).toMatchObject({ status: 431, retryable: false });
    const message = (err as Error).message;
    expect(message).toMatch(/header/i);
    expect(message).toMatch(/token/i);
    expect(message).toMatch(/ASTRO_API_TOKEN/);
    expect(message).toMatch(/concatenat/i);
    expect(astro.requestsFor('deployments.get')).toHaveLength(1);
  });
});
