/**
 * Unit-level edge cases of the daemon push with nock standing in for the Docker Engine API over
 * TCP: the engine answers 200 and reports the failure inside the progress stream, and the
 * X-Registry-Auth header must carry the Astro convention (user `cli`, the token as password).
 */
import { afterEach, describe, expect, it } from 'vitest';
import nock from 'nock';
import Dockerode from 'dockerode';
import { pushImage, RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { isAstroError } from '../../src/index.js';

const ENGINE = 'http://127.0.0.1:2399';
const token = 'eyJhbGciOiJIUzI1NiJ9.eyJwZXJtaXNzaW9ucyI6WyJvcmdhbml6YXRpb25JZDp4Il19.c2lnbmF0dXJlLXNlY3JldC12YWx1ZQ';

afterEach(() => {
  nock.cleanAll();
});

function engine(pushLines: object[]) {
  const auth: string[] = [];
  const scope = nock(ENGINE)
    .get(/\/images\/.+\/json$/)
    .reply(200, {
      Id: 'sha256:' + 'a'.repeat(64),
      RepoTags: ['local/app:1'],
      Os: 'linux',
      Architecture: 'amd64',
      Config: { Labels: { [RUNTIME_VERSION_LABEL]: '3.1-2' } },
      RootFS: { Type: 'layers', Layers: ['sha256:' + 'b'.repeat(64)] },
    })
    .post(/\/images\/.+\/tag/)
    .reply(201)
    .post(/\/images\/.+\/push/)
    .reply(function () {
      auth.push(String(this.req.headers['x-registry-auth']));
      return [200, pushLines.map((l) => JSON.stringify(l)).join('\r\n') + '\r\n', { 'content-type': 'application/json' }];
    })
    .delete(/\/images\/.+/)
    .optionally()
    .reply(200, []);
  return { scope, auth };
}

const docker = () => new Dockerode({ protocol: 'http', host: '127.0.0.1', port: 2399 });
const target = { repository: 'images.example.test/org/dep', tag: 'deploy-1' };

describe('daemon push progress stream (nock as the Engine API)', () => {
  it('sends X-Registry-Auth as base64url JSON with user cli and the registry host', async () => {
    const { auth } = engine([
      { status: 'The push refers to repository [images.example.test/org/dep]' },
      { status: 'Pushed', id: 'bbbbbbbbbbbb' },
      { status: 'deploy-1: digest: sha256:' + 'c'.repeat(64) + ' size: 528' },
      { progressDetail: {}, aux: { Tag: 'deploy-1', Digest: 'sha256:' + 'c'.repeat(64), Size: 528 } },
    ]);
    const result = await pushImage({ imageName: 'local/app:1' }, target, { method: 'daemon', docker: docker(), auth: { username: 'cli', password: token } });
    expect(result.digest).toBe('sha256:' + 'c'.repeat(64));
    const decoded = JSON.parse(Buffer.from(auth[0]!, 'base64url').toString('utf8'));
    expect(decoded).toEqual({ username: 'cli', password: token, serveraddress: 'images.example.test' });
  });

  it('turns an error line inside a 200 stream into a typed, redacted error', async () => {
    engine([
      { status: 'Preparing', id: 'bbbbbbbbbbbb' },
      { errorDetail: { message: `denied: requested access to the resource is denied (token ${token})` }, error: 'denied' },
    ]);
    const err = await pushImage({ imageName: 'local/app:1' }, target, { method: 'daemon', docker: docker(), auth: { username: 'cli', password: token } }).catch((e) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
    expect(err.message).toMatch(/docker logout|containerd/);
    expect(String(err) + JSON.stringify(err)).not.toContain(token);
  });

  it('fails clearly when the stream ends without a digest', async () => {
    engine([{ status: 'Preparing', id: 'bbbbbbbbbbbb' }]);
    const err = await pushImage({ imageName: 'local/app:1' }, target, { method: 'daemon', docker: docker() }).catch((e) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_PUSH_FAILED')).toBe(true);
  });

  it('ignores a listener that throws on every event (noted at debug), and completes', async () => {
    engine([
      { status: 'Pushing', id: 'bbbbbbbbbbbb', progressDetail: { current: 10, total: 20 } },
      { status: 'Pushed', id: 'bbbbbbbbbbbb' },
      { progressDetail: {}, aux: { Tag: 'deploy-1', Digest: 'sha256:' + 'd'.repeat(64), Size: 528 } },
    ]);
    const seen: string[] = [];
    const debug: string[] = [];
    const logger = { error: () => {}, warn: () => {}, info: () => {}, debug: (m: string) => debug.push(m) };
    const result = await pushImage({ imageName: 'local/app:1' }, target, {
      method: 'daemon',
      docker: docker(),
      logger,
      onEvent: (e) => {
        seen.push(e.type);
        throw new Error(`listener bug on ${e.type}`);
      },
    });
    expect(result.digest).toBe('sha256:' + 'd'.repeat(64));
    expect(seen).toContain('image:daemon-progress');
    expect(seen.at(-1)).toBe('image:push-complete');
    expect(debug.length).toBe(seen.length);
  });
});
