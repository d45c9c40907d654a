/**
 * Registry auth with real registries: htpasswd (Basic) and a Bearer challenge with a token
 * server; the password and tokens never show up in results, events or errors.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { LayerCache, pushImage, RUNTIME_VERSION_LABEL, type ImageEvent } from '../../src/image/index.js';
import { uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from './fixtures.js';
import { skopeoInfo } from './verify.js';

let dir: string;
let archive: string;
let basic: TestRegistry;
let bearer: TestRegistry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-auth-test-'));
  archive = join(dir, 'img.tar');
  const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'a.bin': noise(600_000) }, { 'b.txt': 'b' }] });
  await writeLegacyArchive(archive, image, 'x/auth:1');
  [basic, bearer] = await Promise.all([startRegistry('htpasswd'), startRegistry('bearer')]);
});

afterAll(async () => {
  await Promise.all([basic?.stop(), bearer?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

function everythingSaid(events: ImageEvent[], extra: unknown): string {
  return JSON.stringify(events) + JSON.stringify(extra);
}

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(Error);
  return e as Error & { code?: string };
}

describe('Basic auth (htpasswd)', () => {
  it('pushes with the right credentials and hides them', async () => {
    const repo = `${basic.host}/team/${uniqueName()}`;
    const events: ImageEvent[] = [];
    const auth = { username: basic.username, password: basic.password };
    const result = await pushImage(archive, { repository: repo, tag: 'v1' }, { auth, layerCache: false, chunkSizeBytes: 256 * 1024, onEvent: (e) => events.push(e) });
    const info = await skopeoInfo(`${repo}:v1`, auth);
    expect(info.Digest).toBe(result.digest);
    expect(everythingSaid(events, result)).not.toContain(basic.password);
  });

  it('fails with ASTRO_IMAGE_REGISTRY_AUTH for a wrong password or none, without echoing it', async () => {
    const repo = `${basic.host}/team/${uniqueName()}`;
    const wrong = `wrong-${basic.password}`;
    const events: ImageEvent[] = [];
    const err = await failure(pushImage(archive, { repository: repo, tag: 'v1' }, { auth: { username: 'cli', password: wrong }, onEvent: (e) => events.push(e) }));
    expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
    expect(err.message).toMatch(/API token/);
    expect(JSON.stringify({ m: err.message, s: err.stack, c: String((err as { cause?: unknown }).cause), events })).not.toContain(wrong);
    const none = await failure(pushImage(archive, { repository: repo, tag: 'v1' }));
    expect(isAstroError(none, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
    expect(none.message).toMatch(/requires credentials/);
  });
});

describe('Bearer token auth', () => {
  it('gets a token for the right service and scopes (with pull on mount sources) and pushes', async () => {
    const name = `team/${uniqueName()}`;
    const auth = { username: bearer.username, password: bearer.password };
    const cache = new LayerCache();
    const events: ImageEvent[] = [];
    const first = await pushImage(archive, { repository: `${bearer.host}/${name}`, tag: 'v1' }, { auth, layerCache: cache, onEvent: (e) => events.push(e) });
    expect(bearer.tokenRequests.length).toBeGreaterThan(0);
    const req = bearer.tokenRequests.at(-1)!;
    expect(req).toMatchObject({ service: 'test-registry', username: 'cli', granted: true });
    expect(req.scopes).toContain(`repository:${name}:pull,push`);

    // A second repository: the cache names the first one as mount source, so the token must cover pulling from it.
    const other = `team/${uniqueName()}`;
    bearer.tokenRequests.length = 0;
    const second = await pushImage(archive, { repository: `${bearer.host}/${other}`, tag: 'v1' }, { auth, layerCache: cache, onEvent: (e) => events.push(e) });
    expect(bearer.tokenRequests[0]!.scopes).toEqual(expect.arrayContaining([`repository:${other}:pull,push`, `repository:${name}:pull`]));
    expect(second.layers.map((l) => l.status)).toEqual(['mounted', 'mounted']);
    expect(second.digest).toBe(first.digest);

    const info = await skopeoInfo(`${bearer.host}/${other}:v1`, auth);
    expect(info.Digest).toBe(first.digest);
    const said = everythingSaid(events, [first, second]);
    expect(said).not.toContain(bearer.password);
    for (const token of bearer.issuedTokens) expect(said).not.toContain(token);
  });

  it('fails with ASTRO_IMAGE_REGISTRY_AUTH when the token service refuses the credentials', async () => {
    const wrong = `bad-${bearer.password}`;
    const err = await failure(
      pushImage(archive, { repository: `${bearer.host}/team/${uniqueName()}`, tag: 'v1' }, { auth: { username: 'cli', password: wrong } }),
    );
    expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
    expect(err.message).toMatch(/token service refused/);
    expect(`${err.message}${err.stack}`).not.toContain(wrong);
  });
});
