import { onTestFinished } from 'vitest';
import { request } from 'undici';
import { AstroClient, type ClientOptions } from '../../src/index.js';
import { createFakeAstro, type FakeAstro, type FakeAstroOptions } from '../../src/testing/index.js';

/** Start a fake Astro for one test (closed when the test ends) and a client pointed at it. */
export async function startFake(
  options: FakeAstroOptions = {},
  clientOptions: Partial<ClientOptions> = {},
): Promise<{ astro: FakeAstro; client: AstroClient }> {
  const astro = await createFakeAstro(options);
  onTestFinished(() => astro.close());
  const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, retry: { maxRetries: 2 }, ...clientOptions });
  return { astro, client };
}

/** Upload bytes to a SAS URL with a single Put Blob and return the version id (test shortcut). */
export async function putBlob(sasUrl: string, body: Buffer): Promise<string> {
  const res = await request(sasUrl, {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob', 'content-length': String(body.length) },
    body,
  });
  await res.body.text();
  if (res.statusCode !== 201) throw new Error(`put blob failed: ${res.statusCode}`);
  const version = res.headers['x-ms-version-id'];
  if (typeof version !== 'string') throw new Error('no version id');
  return version;
}
