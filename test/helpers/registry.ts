/**
 * A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1 with
 * a free port, in three variants:
 * - `none`: no auth;
 * - `htpasswd`: Basic auth with a bcrypt htpasswd file (made with bcryptjs);
 * - `bearer`: the `silly` auth that sends a Bearer challenge pointing at an in-process token
 *   server; that server checks Basic credentials, records the `service` and `scope`s asked for and
 *   hands out random tokens (silly accepts any token, so the records are what tests assert on).
 * Each registry is stopped (process killed, data removed) by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

// bcryptjs 2.x ships no type declarations.
const bcrypt = createRequire(import.meta.url)('bcryptjs') as { hashSync(password: string, rounds: number): string };

/** Auth variant of a test registry. */
export type RegistryAuthMode = 'none' | 'htpasswd' | 'bearer';

/** One request seen by the fake token server. */
export interface TokenRequest {
  service: string | null;
  scopes: string[];
  /** Username from the Basic header, if any. */
  username?: string;
  granted: boolean;
}

/** A running test registry. */
export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  auth: RegistryAuthMode;
  /** Credentials accepted (htpasswd and bearer variants). */
  username: string;
  password: string;
  /** Requests the token server received (bearer variant). */
  tokenRequests: TokenRequest[];
  /** Tokens the token server issued (bearer variant). */
  issuedTokens: string[];
  /** `127.0.0.1:<port>` of the token server (bearer variant). */
  tokenHost?: string;
  /** The registry's storage folder. */
  dataDir: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function basicUser(req: IncomingMessage): { user: string; pass: string } | undefined {
  const h = req.headers.authorization;
  if (!h?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(h.slice(6), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? undefined : { user: decoded.slice(0, i), pass: decoded.slice(i + 1) };
}

async function startTokenServer(username: string, password: () => string, records: TokenRequest[], issued: string[]): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const creds = basicUser(req);
    const rec: TokenRequest = {
      service: url.searchParams.get('service'),
      scopes: url.searchParams.getAll('scope'),
      granted: false,
    };
    if (creds) rec.username = creds.user;
    records.push(rec);
    if (!creds || creds.user !== username || creds.pass !== password()) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      return;
    }
    rec.granted = true;
    const token = randomBytes(24).toString('base64url');
    issued.push(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

async function waitReady(url: string, proc: ChildProcess, logs: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited with ${proc.exitCode}: ${logs()}`);
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not answer GET /v2/ within ${timeoutMs} ms: ${logs()}`);
}

/** Registries still running, killed when the test process exits however it exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}

/** Start a registry. Fails (never skips) when `docker-registry` is not installed. */
export async function startRegistry(
  auth: RegistryAuthMode = 'none',
  options: { /** Bearer variant: the password the token server accepts, read at each request (e.g. the current fake Astro token). */ tokenPassword?: () => string } = {},
): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'astro-registry-'));
  const username = 'cli';
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const tokenRequests: TokenRequest[] = [];
  const issuedTokens: string[] = [];
  let tokenServer: Server | undefined;
  let tokenHost: string | undefined;
  let authYaml = '';
  if (auth === 'htpasswd') {
    await writeFile(join(dir, 'htpasswd'), `${username}:${bcrypt.hashSync(password, 5)}\n`);
    authYaml = `auth:\n  htpasswd:\n    realm: test-realm\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (auth === 'bearer') {
    const ts = await startTokenServer(username, options.tokenPassword ?? (() => password), tokenRequests, issuedTokens);
    tokenServer = ts.server;
    tokenHost = `127.0.0.1:${ts.port}`;
    authYaml = `auth:\n  silly:\n    realm: "http://127.0.0.1:${ts.port}/token"\n    service: test-registry\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      authYaml,
    ].join('\n');
    await writeFile(join(dir, 'config.yml'), config);
    let log = '';
    let proc: ChildProcess;
    try {
      proc = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      throw new Error(`cannot start docker-registry (apt-get install -y docker-registry): ${(err as Error).message}`);
    }
    trackChild(proc);
    proc.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    proc.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const spawnError = new Promise<never>((_, reject) =>
      proc.once('error', (err) => reject(new Error(`cannot start docker-registry (apt-get install -y docker-registry): ${err.message}`))),
    );
    const url = `http://127.0.0.1:${port}`;
    try {
      await Promise.race([waitReady(url, proc, () => log), spawnError]);
    } catch (err) {
      proc.kill('SIGKILL');
      // A port taken between freePort() and the registry's bind: try another one.
      if (attempt < 3 && /address already in use/i.test(log)) continue;
      await rm(dir, { recursive: true, force: true });
      tokenServer?.close();
      throw err;
    }
    const child = proc;
    return {
      host: `127.0.0.1:${port}`,
      url,
      port,
      auth,
      username,
      password,
      tokenRequests,
      issuedTokens,
      ...(tokenHost ? { tokenHost } : {}),
      dataDir: join(dir, 'data'),
      async stop() {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
          if (child.exitCode === null) child.kill('SIGKILL');
        }
        if (tokenServer) {
          tokenServer.closeAllConnections();
          await new Promise((r) => tokenServer!.close(() => r(undefined)));
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * Route names of registry requests, for the fault proxy's rules and per-route byte counts:
 * `registry.ping`, `registry.blobHead`, `registry.mount`, `registry.uploadStart`,
 * `registry.patch`, `registry.uploadStatus`, `registry.commit`, `registry.uploadCancel`,
 * `registry.manifestPut`, `registry.manifestGet`, `registry.blobGet`, `registry.other`.
 */
export function registryRouteOf(method: string, url: URL): string {
  const m = method.toUpperCase();
  const p = url.pathname;
  if (p === '/v2/' || p === '/v2') return 'registry.ping';
  if (/\/blobs\/uploads\/?$/.test(p) && m === 'POST') return url.searchParams.has('mount') ? 'registry.mount' : 'registry.uploadStart';
  if (/\/blobs\/uploads\/[^/]+$/.test(p)) {
    if (m === 'PATCH') return 'registry.patch';
    if (m === 'PUT') return 'registry.commit';
    if (m === 'GET') return 'registry.uploadStatus';
    if (m === 'DELETE') return 'registry.uploadCancel';
  }
  if (/\/blobs\/sha256:[0-9a-f]+$/.test(p)) return m === 'HEAD' ? 'registry.blobHead' : 'registry.blobGet';
  if (/\/manifests\//.test(p)) return m === 'PUT' ? 'registry.manifestPut' : 'registry.manifestGet';
  return 'registry.other';
}
