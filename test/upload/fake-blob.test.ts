import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';

let server: FakeBlobServer;

beforeAll(async () => {
  server = await startFakeBlobServer();
});
afterAll(async () => {
  await server.close();
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');

async function call(url: string, method: string, params: Record<string, string>, body?: Buffer, headers: Record<string, string> = {}) {
  const extra = new URLSearchParams(params).toString();
  const res = await request(extra ? `${url}&${extra}` : url, {
    method: method as 'PUT',
    headers: body ? { 'content-length': String(body.length), ...headers } : headers,
    body,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

const putBlock = (url: string, id: string, data: Buffer, headers: Record<string, string> = {}) =>
  call(url, 'PUT', { comp: 'block', blockid: id }, data, headers);
const commit = (url: string, entries: string) =>
  call(url, 'PUT', { comp: 'blocklist' }, Buffer.from(`<?xml version="1.0" encoding="utf-8"?><BlockList>${entries}</BlockList>`));

describe('fake blob service', () => {
  it('stages blocks and commits them in list order with a version id', async () => {
    const url = server.service.sasUrl(server.url, 'c1', 'a/b.bin');
    const a = randomBytes(1000);
    const b = randomBytes(500);
    expect((await putBlock(url, b64('id-0001'), a)).status).toBe(201);
    expect((await putBlock(url, b64('id-0002'), b)).status).toBe(201);
    const res = await commit(url, `<Latest>${b64('id-0002')}</Latest><Latest>${b64('id-0001')}</Latest>`);
    expect(res.status).toBe(201);
    const version = res.headers['x-ms-version-id'] as string;
    expect(version).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
    expect(server.service.read('c1', 'a/b.bin')).toEqual(Buffer.concat([b, a]));
    expect(server.service.versions('c1', 'a/b.bin').map((v) => v.versionId)).toEqual([version]);
  });

  it('gives unique, increasing version ids to every commit and Put Blob', async () => {
    const url = server.service.sasUrl(server.url, 'c1', 'versions.bin');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call(url, 'PUT', {}, Buffer.from(`v${i}`), { 'x-ms-blob-type': 'BlockBlob' });
      expect(res.status).toBe(201);
      ids.push(res.headers['x-ms-version-id'] as string);
    }
    expect(new Set(ids).size).toBe(5);
    expect([...ids].sort()).toEqual(ids);
  });

  it('keeps every version: Get Blob with ?versionid= reads an older one back (SAS with r), an unknown one is 404', async () => {
    const write = server.service.sasUrl(server.url, 'c1', 'kept.bin');
    const read = server.service.sasUrl(server.url, 'c1', 'kept.bin', { permissions: 'r' });
    const first = await call(write, 'PUT', {}, Buffer.from('first'), { 'x-ms-blob-type': 'BlockBlob' });
    const second = await call(write, 'PUT', {}, Buffer.from('second'), { 'x-ms-blob-type': 'BlockBlob' });
    const v1 = first.headers['x-ms-version-id'] as string;
    const old = await call(read, 'GET', { versionid: v1 });
    expect([old.status, old.text, old.headers['x-ms-version-id']]).toEqual([200, 'first', v1]);
    expect((await call(read, 'GET', {})).text).toBe('second');
    expect(server.service.readVersion('c1', 'kept.bin', second.headers['x-ms-version-id'] as string)?.toString()).toBe('second');
    expect((await call(read, 'GET', { versionid: '2000-01-01T00:00:00.0000000Z' })).status).toBe(404);
    expect((await call(write, 'GET', { versionid: v1 })).status).toBe(403);
  });

  it('refuses block ids of another width, non-base64 ids and ids over 64 bytes', async () => {
    const url = server.service.sasUrl(server.url, 'c1', 'width.bin');
    expect((await putBlock(url, b64('aaaa'), Buffer.from('x'))).status).toBe(201);
    const other = await putBlock(url, b64('bbbbbbbb'), Buffer.from('y'));
    expect(other.status).toBe(400);
    expect(other.headers['x-ms-error-code']).toBe('InvalidBlobOrBlock');
    expect(other.text).toMatch(/<Error><Code>InvalidBlobOrBlock<\/Code><Message>/);
    expect((await putBlock(url, 'not base64!', Buffer.from('y'))).status).toBe(400);
    expect((await putBlock(url, b64('x'.repeat(65)), Buffer.from('y'))).status).toBe(400);
    // Put Blob discards the uncommitted blocks, after which another width is fine.
    expect((await call(url, 'PUT', {}, Buffer.alloc(0), { 'x-ms-blob-type': 'BlockBlob' })).status).toBe(201);
    expect(server.service.uncommittedBlockIds('c1', 'width.bin')).toEqual([]);
    expect((await putBlock(url, b64('bbbbbbbb'), Buffer.from('y'))).status).toBe(201);
  });

  it('validates Content-MD5 of blocks and Put Blob', async () => {
    const url = server.service.sasUrl(server.url, 'c1', 'md5.bin');
    const data = randomBytes(100);
    const bad = await putBlock(url, b64('m1'), data, { 'content-md5': md5(randomBytes(10)) });
    expect(bad.status).toBe(400);
    expect(bad.headers['x-ms-error-code']).toBe('Md5Mismatch');
    expect((await putBlock(url, b64('m1'), data, { 'content-md5': md5(data) })).status).toBe(201);
    const badBlob = await call(url, 'PUT', {}, data, { 'x-ms-blob-type': 'BlockBlob', 'content-md5': md5(Buffer.from('z')) });
    expect(badBlob.headers['x-ms-error-code']).toBe('Md5Mismatch');
  });

  it('answers 411 to a block without Content-Length', async () => {
    const url = server.service.sasUrl(server.url, 'c1', 'len.bin');
    const res = await request(`${url}&comp=block&blockid=${encodeURIComponent(b64('l1'))}`, {
      method: 'PUT',
      body: Readable.from([Buffer.from('chunked')]),
    });
    expect(res.statusCode).toBe(411);
    expect(res.headers['x-ms-error-code']).toBe('MissingContentLengthHeader');
    await res.body.dump();
  });

  it('checks SAS signature, expiry and permissions', async () => {
    const cw = server.service.sasUrl(server.url, 'c1', 'sas.bin');
    // Unknown signature.
    const forged = cw.replace(/sig=[^&]+/, 'sig=' + encodeURIComponent(randomBytes(32).toString('base64')));
    const f = await putBlock(forged, b64('s1'), Buffer.from('x'));
    expect([f.status, f.headers['x-ms-error-code']]).toEqual([403, 'AuthenticationFailed']);
    // A SAS for another blob does not open this one.
    const other = server.service.sasUrl(server.url, 'c1', 'other.bin').replace('other.bin', 'sas.bin');
    expect((await putBlock(other, b64('s1'), Buffer.from('x'))).status).toBe(403);
    // Expired.
    const expired = server.service.sasUrl(server.url, 'c1', 'sas.bin', { expiresInMs: -1000 });
    const e = await putBlock(expired, b64('s1'), Buffer.from('x'));
    expect([e.status, e.headers['x-ms-error-code']]).toEqual([403, 'AuthenticationFailed']);
    // cw may not read the block list; r may not write.
    const list = await call(cw, 'GET', { comp: 'blocklist', blocklisttype: 'all' });
    expect([list.status, list.headers['x-ms-error-code']]).toEqual([403, 'AuthorizationPermissionMismatch']);
    const ro = server.service.sasUrl(server.url, 'c1', 'sas.bin', { permissions: 'r' });
    const w = await putBlock(ro, b64('s1'), Buffer.from('x'));
    expect([w.status, w.headers['x-ms-error-code']]).toEqual([403, 'AuthorizationPermissionMismatch']);
    // c creates but does not overwrite a committed blob.
    const c = server.service.sasUrl(server.url, 'c1', 'sas.bin', { permissions: 'c' });
    expect((await call(c, 'PUT', {}, Buffer.from('1'), { 'x-ms-blob-type': 'BlockBlob' })).status).toBe(201);
    expect((await call(c, 'PUT', {}, Buffer.from('2'), { 'x-ms-blob-type': 'BlockBlob' })).status).toBe(403);
  });

  it('resolves Latest, Committed and Uncommitted and discards unlisted blocks on commit', async () => {
    const url = server.service.sasUrl(server.url, 'c1', 'kinds.bin', { permissions: 'rcw' });
    const [a, b, c] = [b64('k-a'), b64('k-b'), b64('k-c')];
    await putBlock(url, a, Buffer.from('A'));
    await putBlock(url, b, Buffer.from('B'));
    await putBlock(url, c, Buffer.from('C'));
    expect((await commit(url, `<Uncommitted>${a}</Uncommitted><Latest>${b}</Latest>`)).status).toBe(201);
    expect(server.service.read('c1', 'kinds.bin')?.toString()).toBe('AB');
    // c was not listed: gone.
    expect(server.service.uncommittedBlockIds('c1', 'kinds.bin')).toEqual([]);
    const missing = await commit(url, `<Latest>${c}</Latest>`);
    expect([missing.status, missing.headers['x-ms-error-code']]).toEqual([400, 'InvalidBlockList']);
    // A repeated commit (lost response) works with Latest and fails with Uncommitted.
    expect((await commit(url, `<Latest>${a}</Latest><Latest>${b}</Latest>`)).status).toBe(201);
    expect((await commit(url, `<Uncommitted>${a}</Uncommitted>`)).status).toBe(400);
    expect((await commit(url, `<Committed>${b}</Committed><Committed>${a}</Committed>`)).status).toBe(201);
    expect(server.service.read('c1', 'kinds.bin')?.toString()).toBe('BA');
    // Get Block List reports committed and uncommitted blocks.
    await putBlock(url, c, Buffer.from('CC'));
    const list = await call(url, 'GET', { comp: 'blocklist', blocklisttype: 'all' });
    expect(list.status).toBe(200);
    expect(list.text).toContain(`<CommittedBlocks><Block><Name>${b}</Name><Size>1</Size></Block><Block><Name>${a}</Name>`);
    expect(list.text).toContain(`<UncommittedBlocks><Block><Name>${c}</Name><Size>2</Size></Block></UncommittedBlocks>`);
    const blob = await call(url, 'GET', {});
    expect([blob.status, blob.text]).toEqual([200, 'BA']);
  });

  it('routes requests by operation', () => {
    const u = (q: string) => new URL(`http://x/blob/c/b?sig=s${q}`);
    expect(server.service.routeOf('PUT', u(''))).toBe('blob.putBlob');
    expect(server.service.routeOf('PUT', u('&comp=block&blockid=x'))).toBe('blob.putBlock');
    expect(server.service.routeOf('PUT', u('&comp=blocklist'))).toBe('blob.putBlockList');
    expect(server.service.routeOf('GET', u('&comp=blocklist'))).toBe('blob.getBlockList');
    expect(server.service.routeOf('GET', u(''))).toBe('blob.getBlob');
    expect(server.service.routeOf('DELETE', u(''))).toBe('blob.other');
  });

  it('omits x-ms-version-id when versioning is off', async () => {
    const plain = await startFakeBlobServer({ versioning: false });
    try {
      const url = plain.service.sasUrl(plain.url, 'c1', 'nv.bin');
      const res = await call(url, 'PUT', {}, Buffer.from('x'), { 'x-ms-blob-type': 'BlockBlob' });
      expect(res.status).toBe(201);
      expect(res.headers['x-ms-version-id']).toBeUndefined();
      expect(plain.service.versions('c1', 'nv.bin')).toEqual([]);
    } finally {
      await plain.close();
    }
  });
});
