/**
 * Dispatchers of undici 7 (the SDK's own) and undici 8 (installed beside it as `undici8`) both
 * carry the SDK's requests. Undici 8 refuses undici 7's top-level `request(url, { dispatcher })`
 * ("opts.dispatcher is not supported by instance methods", which surfaced as ASTRO_CONNECTION and
 * was retried), so every request goes through the dispatcher's own `request` method.
 *
 * The type checks below hold on every Node; undici 8's runtime cases are in
 * undici8-runtime.test.ts, which runs on Node 22.19 or later only (see vitest.config.ts).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import * as undici7 from 'undici';
import type * as Undici8 from 'undici8';
import type { ClientOptions } from '../../src/index.js';
import type { UploadBlockBlobOptions } from '../../src/upload/index.js';
import type { PushImageOptions } from '../../src/image/index.js';
import { httpRequest } from '../../src/core/dispatcher.js';

// Compile-time: dispatchers of both majors fit every `dispatcher` option (TS2322 before #12).
export function typeChecks(a8: Undici8.Agent, m8: Undici8.MockAgent, p8: Undici8.ProxyAgent, e8: Undici8.EnvHttpProxyAgent, r8: Undici8.RetryAgent) {
  const options: ClientOptions[] = [a8, m8, p8, e8, r8, new undici7.Agent(), new undici7.MockAgent()].map((dispatcher) => ({ dispatcher }));
  const upload: UploadBlockBlobOptions = { dispatcher: m8 };
  const push: PushImageOptions = { dispatcher: p8 };
  const composed: ClientOptions = { dispatcher: a8.compose((dispatch) => dispatch) };
  return [options, upload, push, composed];
}

describe('httpRequest with undici 7', () => {
  it("drives an object that has dispatch but no request with the SDK's undici", async () => {
    const agent = new undici7.MockAgent();
    agent.disableNetConnect();
    agent.get('https://example.test').intercept({ path: '/a?b=1', method: 'GET' }).reply(200, 'bare');
    onTestFinished(() => agent.close());
    const bare = { dispatch: (options: unknown, handler: unknown) => agent.dispatch(options as never, handler as never) };
    const res = await httpRequest('https://example.test/a?b=1', { method: 'GET' }, bare);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('bare');
  });
});
