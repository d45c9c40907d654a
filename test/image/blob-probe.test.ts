/**
 * `HEAD` of a blob on a registry that keeps blobs in object storage and redirects to it (as
 * distribution does with S3, GCS or Azure storage and its default `redirect`), over real HTTP on
 * 127.0.0.1.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobExists } from '../../src/image/blob-probe.js';
import { registryRetryPolicy } from '../../src/image/blob-upload.js';
import { RegistryClient } from '../../src/image/registry-client.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
let registry: Server;
let storage: Server;
let storageAnswer: { status: number; length?: number } = { status: 200, length: 1234 };
const storageRequests: Array<{ method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders }> = [];

const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
const close = (server: Server | undefined) => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));

beforeAll(async () => {
  storage = createServer((req, res) => {
    storageRequests.push({ method: req.method, url: req.url, headers: req.headers });
    if (storageAnswer.length !== undefined) res.setHeader('content-length', storageAnswer.length);
    res.statusCode = storageAnswer.status;
    res.end();
  });
  const storagePort = await listen(storage);
  registry = createServer((req, res) => {
    if (req.url === `/v2/team/app/blobs/${DIGEST}`) {
      res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/bucket/blob?sig=signed` }).end();
    } else res.writeHead(404).end();
  });
  await listen(registry);
});

afterAll(async () => {
  await Promise.all([close(registry), close(storage)]);
});

function client(): RegistryClient {
  const port = (registry.address() as AddressInfo).port;
  return new RegistryClient({ host: `127.0.0.1:${port}`, repository: 'team/app', auth: { username: 'cli', password: 'registry-secret' } });
}

describe('blobExists on a registry that redirects to storage', () => {
  it("takes the blob's size from storage, without the registry's credentials", async () => {
    storageAnswer = { status: 200, length: 1234 };
    storageRequests.length = 0;
    expect(await blobExists(client(), DIGEST, { policy: registryRetryPolicy() })).toBe(1234);
    expect(storageRequests).toHaveLength(1);
    expect(storageRequests[0]!.method).toBe('HEAD');
    expect(storageRequests[0]!.url).toBe('/bucket/blob?sig=signed');
    expect(storageRequests[0]!.headers.authorization).toBeUndefined();
  });

  it('counts the blob as absent when storage does not give its size, so it is pushed again', async () => {
    storageAnswer = { status: 403 };
    expect(await blobExists(client(), DIGEST, { policy: registryRetryPolicy() })).toBeUndefined();
  });

  it('a blob the registry does not have is absent', async () => {
    expect(await blobExists(client(), `sha256:${'b'.repeat(64)}`, { policy: registryRetryPolicy() })).toBeUndefined();
  });
});
