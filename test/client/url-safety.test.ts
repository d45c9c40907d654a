/**
 * Issue #15 ("Trust"), plain http: credentials never go over plain http to a host that is not
 * loopback. The API client refuses such a baseUrl at construction (opt-in for an internal
 * gateway), the uploader a SAS URL and the registry client a plain-http registry, all before any
 * connection (the hosts below are reserved `.invalid` names: nothing here resolves a public name).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { AstroClient, AstroConfigError, ErrorCodes, isAstroError } from '../../src/index.js';
import { assertSecureUrl, isLoopbackHost } from '../../src/core/url-safety.js';
import { UploadError } from '../../src/core/errors.js';
import { uploadBlockBlob } from '../../src/upload/index.js';
import { parseBlobSas } from '../../src/upload/sas.js';
import { RegistryClient } from '../../src/image/registry-client.js';
import { TestTokenMinter } from '../../src/testing/index.js';
import { startFake } from '../helpers/fake.js';

const token = new TestTokenMinter('clorg1').mint();
let agent: MockAgent | undefined;

/** A dispatcher that refuses real connections and records every request it is handed. */
function recordingAgent(): { agent: MockAgent; calls: string[] } {
  const calls: string[] = [];
  agent = new MockAgent();
  agent.disableNetConnect();
  const dispatch = agent.dispatch.bind(agent);
  agent.dispatch = (opts, handler) => {
    calls.push(`${opts.method} ${String(opts.origin)}${opts.path}`);
    return dispatch(opts, handler);
  };
  return { agent, calls };
}

afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('isLoopbackHost', () => {
  it('accepts 127.0.0.0/8, ::1 and localhost, with or without a port', () => {
    for (const h of ['127.0.0.1', '127.0.0.1:8080', '127.255.3.4', 'localhost', 'LOCALHOST:5000', '::1', '[::1]', '[::1]:443', '127.1']) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
  });
  it('refuses everything else, including look-alikes', () => {
    for (const h of ['example.invalid', '10.0.0.1', '0.0.0.0', '128.0.0.1', '[::2]', 'localhost.example.invalid', '127.0.0.1.example.invalid', 'notlocalhost', '']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });
  it('assertSecureUrl passes https, loopback http and an opt-in, and builds the caller’s error otherwise', () => {
    const make = (m: string) => new UploadError(ErrorCodes.UPLOAD_INVALID_URL, m);
    expect(() => assertSecureUrl('https://example.invalid/x', 'The URL', false, make)).not.toThrow();
    expect(() => assertSecureUrl('http://127.0.0.1:9/x', 'The URL', false, make)).not.toThrow();
    expect(() => assertSecureUrl('http://example.invalid/x', 'The URL', true, make)).not.toThrow();
    const err = thrown(() => assertSecureUrl('http://user:pw@example.invalid/x?sig=abcdefgh12345', 'The URL', false, make));
    expect(isAstroError(err, 'ASTRO_UPLOAD_INVALID_URL')).toBe(true);
    expect((err as Error).message).not.toContain('abcdefgh12345');
    expect((err as Error).message).not.toContain(':pw@');
  });
});

describe('API baseUrl over plain http', () => {
  it('refuses a non-loopback http baseUrl at construction, before any request', () => {
    const { agent: a, calls } = recordingAgent();
    for (const baseUrl of ['http://example.invalid/v1', 'http://10.1.2.3:8080/v1', 'http://localhost.example.invalid/v1']) {
      const err = thrown(() => new AstroClient({ token, baseUrl, dispatcher: a }));
      expect(err, baseUrl).toBeInstanceOf(AstroConfigError);
      expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION'), baseUrl).toBe(true);
      expect((err as Error).message).toMatch(/allowInsecureHttp/);
      expect((err as Error).message).not.toContain(token);
    }
    expect(calls).toEqual([]);
  });

  it('refuses it from ASTRO_API_URL too', () => {
    const prev = process.env.ASTRO_API_URL;
    try {
      process.env.ASTRO_API_URL = 'http://example.invalid/v1';
      expect(isAstroError(thrown(() => new AstroClient({ token })), 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
    } finally {
      if (prev === undefined) delete process.env.ASTRO_API_URL;
      else process.env.ASTRO_API_URL = prev;
    }
  });

  it('allows loopback http', async () => {
    for (const baseUrl of ['http://127.0.0.1:9/v1', 'http://127.3.2.1/v1', 'http://localhost:1234/v1', 'http://[::1]:8080/v1']) {
      expect(new AstroClient({ token, baseUrl }).organizationId, baseUrl).toBe('clorg1');
    }
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    await expect(client.deployments.get('cldep1')).resolves.toMatchObject({ id: 'cldep1' });
  });

  it('allows a non-loopback http gateway with allowInsecureHttp, and withOptions keeps the opt-in', async () => {
    const { agent: a, calls } = recordingAgent();
    const origin = 'http://gateway.example.invalid';
    a.get(origin)
      .intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' })
      .reply(200, { id: 'cldep1', name: 'd', organizationId: 'clorg1', workspaceId: 'clws', type: 'STANDARD', status: 'HEALTHY', isDagDeployEnabled: true, isCicdEnforced: false });
    const client = new AstroClient({ token, baseUrl: `${origin}/v1`, dispatcher: a, allowInsecureHttp: true });
    await expect(client.deployments.get('cldep1')).resolves.toMatchObject({ id: 'cldep1' });
    expect(calls).toEqual([`GET ${origin}/v1/organizations/clorg1/deployments/cldep1`]);
    expect(client.withOptions({ timeoutMs: 1000 }).organizationId).toBe('clorg1');
    expect(isAstroError(thrown(() => client.withOptions({ allowInsecureHttp: false })), 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
  });

  it('rejects a non-boolean allowInsecureHttp', () => {
    expect(isAstroError(thrown(() => new AstroClient({ token, allowInsecureHttp: 'yes' as unknown as boolean })), 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
  });
});

describe('SAS URLs over plain http', () => {
  const sas = 'http://acct.example.invalid/dags/org/dep?sv=2023-01-03&sp=cw&se=2099-01-01T00:00:00Z&sig=c2VjcmV0LXNpZy12YWx1ZQ%3D%3D';

  it('parseBlobSas refuses http to a non-loopback host, synchronously, without leaking the sig', () => {
    const err = thrown(() => parseBlobSas(sas));
    expect(isAstroError(err, 'ASTRO_UPLOAD_INVALID_URL')).toBe(true);
    expect((err as Error).message).toMatch(/http/);
    expect((err as Error).message).not.toContain('c2VjcmV0LXNpZy12YWx1ZQ');
    expect(parseBlobSas('http://127.0.0.1:10000/devstoreaccount1/c/b?sig=abcdefghij').displayUrl).toBe('http://127.0.0.1:10000/devstoreaccount1/c/b');
    expect(parseBlobSas(sas.replace('http:', 'https:')).displayUrl).toBe('https://acct.example.invalid/dags/org/dep');
  });

  it('uploadBlockBlob rejects it before any request', async () => {
    const { agent: a, calls } = recordingAgent();
    const err = await uploadBlockBlob(sas, Buffer.from('hello world'), { dispatcher: a, journalDir: false }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_UPLOAD_INVALID_URL')).toBe(true);
    expect(calls).toEqual([]);
  });
});

describe('registries over plain http', () => {
  it('refuses plainHttp to a non-loopback registry at construction', () => {
    const { agent: a, calls } = recordingAgent();
    const err = thrown(() => new RegistryClient({ host: 'registry.example.invalid:5000', repository: 'org/app', plainHttp: true, dispatcher: a, auth: { username: 'cli', password: 'registry-secret-123' } }));
    expect(isAstroError(err, 'ASTRO_INSECURE_URL')).toBe(true);
    expect((err as Error).message).not.toContain('registry-secret-123');
    expect(calls).toEqual([]);
  });

  it('keeps https for remote registries and http for loopback ones', async () => {
    const remote = new RegistryClient({ host: 'registry.example.invalid', repository: 'org/app' });
    expect(remote.baseUrl).toBe('https://registry.example.invalid');
    const local = new RegistryClient({ host: '127.0.0.1:5000', repository: 'org/app', plainHttp: true });
    expect(local.baseUrl).toBe('http://127.0.0.1:5000');
    await remote.close();
    await local.close();
  });
});
