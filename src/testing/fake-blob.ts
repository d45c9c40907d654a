/**
 * An in-memory Azure block-blob service for tests.
 *
 * Faithful where the uploader depends on it: Put Blob, Put Block, Put Block List (`Latest`,
 * `Committed`, `Uncommitted`), Get Block List and Get Blob; SAS checks (only signatures this
 * service minted, expiry, `r`/`w`/`c` permissions); block-ID rules (base64, at most 64 decoded
 * bytes, one width per blob); `Content-MD5` validation; `411` without `Content-Length`; and,
 * unlike Azurite, blob versioning: every commit returns an `x-ms-version-id`, and Get Blob with
 * `?versionid=` reads that version back (as Azure does). Errors carry the
 * `x-ms-error-code` header and the XML `<Error>` body the real service sends.
 *
 * Mount {@link FakeBlobService.handle} in any Node HTTP server (the fake Astro server does), or run
 * it alone with {@link startFakeBlobServer}.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './loopback.js';
import { dropConnection, readRequestBody, type ProceedOptions } from './faults.js';

import { blobRouteOf, type FakeBlobRoute } from './blob-routes.js';

/** Route names {@link FakeBlobService.routeOf} gives requests (used by fault rules). */
export type { FakeBlobRoute };

/** Options of {@link FakeBlobService.handle}; the same shape as `applyFault`'s `proceed` options. */
export type FakeBlobHandleOptions = ProceedOptions;

/** Options of {@link FakeBlobService.sasUrl}. */
export interface FakeSasOptions {
  /** Signed permissions, any of `r`, `c`, `w`. @default 'cw' (write-only, like Astro's upload URLs) */
  permissions?: string;
  /** Lifetime of the SAS in milliseconds; negative values mint an already-expired SAS. @default 3600000 */
  expiresInMs?: number;
}

/** One committed version of a blob. */
export interface FakeBlobVersion {
  /** The `x-ms-version-id` returned by the commit. */
  versionId: string;
  /** Size of that version, in bytes. */
  size: number;
  /** When it was committed. */
  committedAt: Date;
}

/** The in-memory blob service. */
export interface FakeBlobService {
  /**
   * Serve one request. `url.pathname` must be `${mountPath}/<container>/<blobName...>`.
   * `options` comes from `applyFault`'s `proceed`: `dropResponse` performs the operation but resets
   * the connection instead of answering; `throttleBytesPerSecond` reads the body at that rate.
   */
  handle(req: IncomingMessage, res: ServerResponse, url: URL, options?: FakeBlobHandleOptions): Promise<void>;
  /** The route name of a request, for fault rules and statistics. */
  routeOf(method: string, url: URL): FakeBlobRoute;
  /**
   * A blob SAS URL minted by this service. `baseUrl` is the origin of the server that mounts the
   * service (for example `http://127.0.0.1:1234`); the mount path is appended.
   */
  sasUrl(baseUrl: string, container: string, blob: string, options?: FakeSasOptions): string;
  /** Current committed content of a blob, or undefined when nothing is committed. */
  read(container: string, blob: string): Buffer | undefined;
  /** Every committed version of a blob, oldest first (empty when versioning is off). */
  versions(container: string, blob: string): FakeBlobVersion[];
  /** The content of one committed version (what Get Blob with `?versionid=` returns), or undefined. */
  readVersion(container: string, blob: string, versionId: string): Buffer | undefined;
  /** Uncommitted block IDs of a blob, in staging order (for assertions). */
  uncommittedBlockIds(container: string, blob: string): string[];
  /** Request counts by route. */
  readonly stats: Record<FakeBlobRoute, number>;
}

/** Options of {@link createFakeBlobService}. */
export interface FakeBlobServiceOptions {
  /** Path prefix the service is mounted at. @default '/blob' */
  mountPath?: string;
  /** Return `x-ms-version-id` on commits, as an account with blob versioning does. @default true */
  versioning?: boolean;
  /** Largest block body accepted, in bytes (`413 RequestBodyTooLarge` above). @default 4000 MiB */
  maxBlockBytes?: number;
}

interface Block {
  id: string;
  data: Buffer;
}

interface BlobState {
  committed: { blocks: Block[]; content: Buffer; etag: string; lastModified: Date; contentType: string; contentMd5?: string; versionId?: string } | undefined;
  uncommitted: Map<string, Buffer>;
  versions: FakeBlobVersion[];
  /** Content of every version, by version ID (Azure keeps versions until they are deleted). */
  versionContent: Map<string, Buffer>;
}

interface SasGrant {
  container: string;
  blob: string;
  permissions: string;
  expiresAt: Date;
  se: string;
}

const SERVICE_VERSION = '2025-11-05';
const MAX_BLOCK_ID_BYTES = 64;
const MAX_COMMITTED_BLOCKS = 50_000;
const MAX_UNCOMMITTED_BLOCKS = 100_000;

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function isBase64(s: string): boolean {
  return s.length > 0 && s.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(s);
}

/** Version IDs look like Azure's: an ISO timestamp with 7 fractional digits, strictly increasing. */
function versionIdClock(): () => string {
  let lastTicks = 0n;
  return () => {
    const nowTicks = BigInt(Date.now()) * 10_000n;
    lastTicks = nowTicks > lastTicks ? nowTicks : lastTicks + 1n;
    const ms = Number(lastTicks / 10_000n);
    const iso = new Date(ms).toISOString().slice(0, 19);
    const fraction = (lastTicks % 10_000_000n).toString().padStart(7, '0');
    return `${iso}.${fraction}Z`;
  };
}

/** Create an in-memory blob service (see the module comment for what it models). */
export function createFakeBlobService(options: FakeBlobServiceOptions = {}): FakeBlobService {
  const mountPath = (options.mountPath ?? '/blob').replace(/\/+$/, '');
  const versioning = options.versioning ?? true;
  const maxBlockBytes = options.maxBlockBytes ?? 4000 * 1024 * 1024;
  const blobs = new Map<string, BlobState>();
  const grants = new Map<string, SasGrant>();
  const nextVersionId = versionIdClock();
  let etagCounter = 0;
  const stats: Record<FakeBlobRoute, number> = {
    'blob.putBlob': 0,
    'blob.putBlock': 0,
    'blob.putBlockList': 0,
    'blob.getBlockList': 0,
    'blob.getBlob': 0,
    'blob.other': 0,
  };

  const key = (container: string, blob: string) => `${container}/${blob}`;
  const stateOf = (container: string, blob: string, create: boolean): BlobState | undefined => {
    let s = blobs.get(key(container, blob));
    if (!s && create) {
      s = { committed: undefined, uncommitted: new Map(), versions: [], versionContent: new Map() };
      blobs.set(key(container, blob), s);
    }
    return s;
  };
  const newEtag = () => `"0x8DC${(Date.now() * 1000 + (etagCounter++ % 1000)).toString(16).toUpperCase()}"`;

  function parsePath(url: URL): { container: string; blob: string } {
    if (!url.pathname.startsWith(`${mountPath}/`)) throw new HttpFailure(400, 'InvalidUri', 'The requested URI does not represent any resource on the server.');
    const rest = url.pathname.slice(mountPath.length + 1);
    const slash = rest.indexOf('/');
    if (slash <= 0 || slash === rest.length - 1) throw new HttpFailure(400, 'InvalidUri', 'The requested URI does not name a blob.');
    return { container: decodeURIComponent(rest.slice(0, slash)), blob: decodeURIComponent(rest.slice(slash + 1)) };
  }

  /** Check the SAS and that it grants one of `needed` (each a set of letters any of which suffices). */
  function authorize(url: URL, container: string, blob: string, needed: string): SasGrant {
    const sig = url.searchParams.get('sig');
    const grant = sig ? grants.get(sig) : undefined;
    if (
      !grant ||
      grant.container !== container ||
      grant.blob !== blob ||
      url.searchParams.get('sp') !== grant.permissions ||
      url.searchParams.get('se') !== grant.se
    ) {
      throw new HttpFailure(
        403,
        'AuthenticationFailed',
        'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.',
      );
    }
    if (grant.expiresAt.getTime() <= Date.now()) {
      throw new HttpFailure(403, 'AuthenticationFailed', 'Signed expiry time has to be after signed start time: signature not valid in the specified time frame.');
    }
    if (![...needed].some((p) => grant.permissions.includes(p))) {
      throw new HttpFailure(403, 'AuthorizationPermissionMismatch', 'This request is not authorized to perform this operation using this permission.');
    }
    return grant;
  }

  /** Writes need `w`, or `c` while the blob has no committed content. */
  function authorizeWrite(url: URL, container: string, blob: string): void {
    const exists = stateOf(container, blob, false)?.committed !== undefined;
    authorize(url, container, blob, exists ? 'w' : 'wc');
  }

  function requireLength(req: IncomingMessage): number {
    const raw = req.headers['content-length'];
    if (raw === undefined) throw new HttpFailure(411, 'MissingContentLengthHeader', 'Content-Length HTTP header is missing.');
    return Number(raw);
  }

  function checkMd5(req: IncomingMessage, body: Buffer): void {
    const given = req.headers['content-md5'];
    if (given === undefined) return;
    const actual = createHash('md5').update(body).digest('base64');
    if (given !== actual) {
      throw new HttpFailure(400, 'Md5Mismatch', `The MD5 value specified in the request did not match with the MD5 value calculated by the server. Specified: ${given}; calculated: ${actual}.`);
    }
  }

  function commit(state: BlobState, blocks: Block[], contentType: string, contentMd5: string | undefined): Record<string, string> {
    const content = Buffer.concat(blocks.map((b) => b.data));
    const etag = newEtag();
    const lastModified = new Date();
    const versionId = versioning ? nextVersionId() : undefined;
    state.committed = { blocks, content, etag, lastModified, contentType, ...(contentMd5 ? { contentMd5 } : {}), ...(versionId ? { versionId } : {}) };
    state.uncommitted.clear();
    if (versionId) {
      state.versions.push({ versionId, size: content.length, committedAt: lastModified });
      state.versionContent.set(versionId, content);
    }
    return {
      etag,
      'last-modified': lastModified.toUTCString(),
      'x-ms-request-server-encrypted': 'true',
      ...(versionId ? { 'x-ms-version-id': versionId } : {}),
    };
  }

  function parseBlockList(xml: string): Array<{ kind: 'Committed' | 'Uncommitted' | 'Latest'; id: string }> {
    const body = /<BlockList>([\s\S]*)<\/BlockList>/.exec(xml)?.[1];
    if (body === undefined) throw new HttpFailure(400, 'InvalidXmlDocument', 'XML specified is not syntactically valid.');
    const out: Array<{ kind: 'Committed' | 'Uncommitted' | 'Latest'; id: string }> = [];
    const re = /<(Committed|Uncommitted|Latest)>([^<]*)<\/\1>|(\S)/g;
    for (const m of body.matchAll(re)) {
      if (m[3] !== undefined) throw new HttpFailure(400, 'InvalidXmlDocument', 'XML specified is not syntactically valid.');
      out.push({ kind: m[1] as 'Committed' | 'Uncommitted' | 'Latest', id: m[2]!.trim() });
    }
    return out;
  }

  async function serve(req: IncomingMessage, url: URL, opts: FakeBlobHandleOptions): Promise<{ status: number; headers: Record<string, string>; body?: Buffer }> {
    const route = blobRouteOf(req.method ?? 'GET', url);
    stats[route] += 1;
    const { container, blob } = parsePath(url);
    switch (route) {
      case 'blob.putBlob': {
        authorizeWrite(url, container, blob);
        requireLength(req);
        const body = await readRequestBody(req, opts.throttleBytesPerSecond);
        if (req.headers['x-ms-blob-type'] !== 'BlockBlob') {
          throw new HttpFailure(400, 'MissingRequiredHeader', 'An HTTP header that is mandatory for this request is not specified: x-ms-blob-type.');
        }
        checkMd5(req, body);
        const state = stateOf(container, blob, true)!;
        const contentType = String(req.headers['x-ms-blob-content-type'] ?? req.headers['content-type'] ?? 'application/octet-stream');
        const contentMd5 = createHash('md5').update(body).digest('base64');
        // Put Blob replaces the blob and discards every uncommitted block.
        const headers = commit(state, body.length ? [{ id: '', data: body }] : [], contentType, contentMd5);
        state.committed!.blocks = [];
        return { status: 201, headers: { ...headers, 'content-md5': contentMd5 } };
      }
      case 'blob.putBlock': {
        authorizeWrite(url, container, blob);
        requireLength(req);
        const id = url.searchParams.get('blockid') ?? '';
        const body = await readRequestBody(req, opts.throttleBytesPerSecond);
        if (!isBase64(id) || Buffer.from(id, 'base64').length > MAX_BLOCK_ID_BYTES) {
          throw new HttpFailure(400, 'InvalidBlobOrBlock', 'The specified blob or block content is invalid (block ID must be base64 of at most 64 bytes).');
        }
        if (body.length > maxBlockBytes) throw new HttpFailure(413, 'RequestBodyTooLarge', `The request body is too large and exceeds the maximum permissible limit (${maxBlockBytes} bytes).`);
        checkMd5(req, body);
        const state = stateOf(container, blob, true)!;
        const width = state.uncommitted.keys().next().value as string | undefined;
        if (width !== undefined && width.length !== id.length) {
          throw new HttpFailure(400, 'InvalidBlobOrBlock', 'The specified blob or block content is invalid (all block IDs of a blob must have the same length).');
        }
        if (!state.uncommitted.has(id) && state.uncommitted.size >= MAX_UNCOMMITTED_BLOCKS) {
          throw new HttpFailure(409, 'RequestEntityTooLargeBlockCountExceedsLimit', 'The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.');
        }
        // Re-staging an ID replaces the block; keep insertion order of first staging.
        state.uncommitted.set(id, body);
        return { status: 201, headers: { 'content-md5': createHash('md5').update(body).digest('base64'), 'x-ms-request-server-encrypted': 'true' } };
      }
      case 'blob.putBlockList': {
        authorizeWrite(url, container, blob);
        const xml = await readRequestBody(req, opts.throttleBytesPerSecond);
        checkMd5(req, xml);
        const entries = parseBlockList(xml.toString('utf8'));
        if (entries.length > MAX_COMMITTED_BLOCKS) throw new HttpFailure(400, 'InvalidBlockList', 'The block list may not contain more than 50,000 blocks.');
        const state = stateOf(container, blob, true)!;
        const committed = new Map((state.committed?.blocks ?? []).map((b) => [b.id, b.data] as const));
        const kinds = new Map<string, string>();
        const blocks: Block[] = [];
        for (const { kind, id } of entries) {
          const seen = kinds.get(id);
          if (seen !== undefined && seen !== kind) throw new HttpFailure(400, 'InvalidBlockList', 'The specified block list is invalid.');
          kinds.set(id, kind);
          const data =
            kind === 'Committed'
              ? committed.get(id)
              : kind === 'Uncommitted'
                ? state.uncommitted.get(id)
                : (state.uncommitted.get(id) ?? committed.get(id));
          if (data === undefined) throw new HttpFailure(400, 'InvalidBlockList', 'The specified block list is invalid.');
          blocks.push({ id, data });
        }
        const contentType = String(req.headers['x-ms-blob-content-type'] ?? 'application/octet-stream');
        const contentMd5 = req.headers['x-ms-blob-content-md5'] as string | undefined;
        // The commit keeps the listed blocks and discards every other uncommitted one.
        const headers = commit(state, blocks, contentType, contentMd5);
        return { status: 201, headers: { ...headers, 'content-md5': createHash('md5').update(xml).digest('base64') } };
      }
      case 'blob.getBlockList': {
        authorize(url, container, blob, 'r');
        await readRequestBody(req);
        const state = stateOf(container, blob, false);
        if (!state) throw new HttpFailure(404, 'BlobNotFound', 'The specified blob does not exist.');
        const type = (url.searchParams.get('blocklisttype') ?? 'committed').toLowerCase();
        const list = (blocks: Array<[string, number]>) =>
          blocks.map(([id, size]) => `<Block><Name>${xmlEscape(id)}</Name><Size>${size}</Size></Block>`).join('');
        const committedXml =
          type === 'committed' || type === 'all'
            ? `<CommittedBlocks>${list((state.committed?.blocks ?? []).map((b) => [b.id, b.data.length]))}</CommittedBlocks>`
            : '';
        const uncommittedXml =
          type === 'uncommitted' || type === 'all'
            ? `<UncommittedBlocks>${list([...state.uncommitted].map(([id, d]) => [id, d.length]))}</UncommittedBlocks>`
            : '';
        const body = Buffer.from(`<?xml version="1.0" encoding="utf-8"?><BlockList>${committedXml}${uncommittedXml}</BlockList>`);
        return {
          status: 200,
          headers: {
            'content-type': 'application/xml',
            'x-ms-blob-content-length': String(state.committed?.content.length ?? 0),
            ...(state.committed ? { etag: state.committed.etag, 'last-modified': state.committed.lastModified.toUTCString() } : {}),
          },
          body,
        };
      }
      case 'blob.getBlob': {
        authorize(url, container, blob, 'r');
        await readRequestBody(req);
        const state = stateOf(container, blob, false);
        const versionId = url.searchParams.get('versionid');
        if (versionId !== null) {
          const content = state?.versionContent.get(versionId);
          if (!content) throw new HttpFailure(404, 'BlobNotFound', 'The specified blob does not exist.');
          const v = state!.versions.find((x) => x.versionId === versionId)!;
          return {
            status: 200,
            headers: { 'content-type': 'application/octet-stream', 'last-modified': v.committedAt.toUTCString(), 'x-ms-blob-type': 'BlockBlob', 'x-ms-version-id': versionId },
            body: req.method === 'HEAD' ? undefined : content,
          };
        }
        const c = state?.committed;
        if (!c) throw new HttpFailure(404, 'BlobNotFound', 'The specified blob does not exist.');
        return {
          status: 200,
          headers: {
            'content-type': c.contentType,
            etag: c.etag,
            'last-modified': c.lastModified.toUTCString(),
            'x-ms-blob-type': 'BlockBlob',
            ...(c.contentMd5 ? { 'content-md5': c.contentMd5 } : {}),
            ...(c.versionId ? { 'x-ms-version-id': c.versionId } : {}),
          },
          body: req.method === 'HEAD' ? undefined : c.content,
        };
      }
      default:
        await readRequestBody(req).catch(() => Buffer.alloc(0));
        throw new HttpFailure(400, 'UnsupportedQueryParameter', 'This fake blob service supports Put Blob, Put Block, Put Block List, Get Block List and Get Blob only.');
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL, opts: FakeBlobHandleOptions = {}): Promise<void> {
    const requestId = randomUUID();
    const common = { 'x-ms-request-id': requestId, 'x-ms-version': SERVICE_VERSION, date: new Date().toUTCString() };
    let status: number;
    let headers: Record<string, string>;
    let body: Buffer | undefined;
    try {
      ({ status, headers, body } = await serve(req, url, opts));
    } catch (error) {
      if (!(error instanceof HttpFailure)) {
        // The client went away mid-body: nothing was stored and there is no one to answer.
        if (!res.destroyed) res.destroy();
        return;
      }
      status = error.status;
      body = Buffer.from(
        `<?xml version="1.0" encoding="utf-8"?><Error><Code>${error.code}</Code><Message>${xmlEscape(error.message)}\nRequestId:${requestId}\nTime:${new Date().toISOString()}</Message></Error>`,
      );
      headers = { 'x-ms-error-code': error.code, 'content-type': 'application/xml' };
      // Answer before the body was read: do not keep reading a body nobody will use.
      if (!req.complete) {
        headers.connection = 'close';
        req.resume();
      }
    }
    if (opts.dropResponse) {
      dropConnection(req);
      return;
    }
    res.writeHead(status, { ...common, ...headers, 'content-length': String(body?.length ?? 0) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function sasUrl(baseUrl: string, container: string, blob: string, sasOptions: FakeSasOptions = {}): string {
    const permissions = sasOptions.permissions ?? 'cw';
    const now = Date.now();
    const expiresAt = new Date(now + (sasOptions.expiresInMs ?? 3_600_000));
    const se = expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const sig = randomBytes(32).toString('base64');
    grants.set(sig, { container, blob, permissions, expiresAt, se });
    const params = new URLSearchParams({
      sv: SERVICE_VERSION,
      st: new Date(now - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      se,
      sr: 'b',
      sp: permissions,
      spr: 'https,http',
      sig,
    });
    const path = `${mountPath}/${encodeURIComponent(container)}/${blob.split('/').map(encodeURIComponent).join('/')}`;
    return `${baseUrl.replace(/\/+$/, '')}${path}?${params.toString()}`;
  }

  return {
    handle,
    routeOf: blobRouteOf,
    sasUrl,
    read: (container, blob) => {
      const c = stateOf(container, blob, false)?.committed;
      return c ? Buffer.from(c.content) : undefined;
    },
    versions: (container, blob) => [...(stateOf(container, blob, false)?.versions ?? [])],
    readVersion: (container, blob, versionId) => {
      const content = stateOf(container, blob, false)?.versionContent.get(versionId);
      return content ? Buffer.from(content) : undefined;
    },
    uncommittedBlockIds: (container, blob) => [...(stateOf(container, blob, false)?.uncommitted.keys() ?? [])],
    stats,
  };
}

/** A running standalone fake blob server. */
export interface FakeBlobServer {
  /** Origin of the server, e.g. `http://127.0.0.1:40123` (pass it to `service.sasUrl`). */
  url: string;
  service: FakeBlobService;
  /** Stop the server and drop open connections. */
  close(): Promise<void>;
}

/** Start a fake blob service on `127.0.0.1` with a free port. */
export async function startFakeBlobServer(options: FakeBlobServiceOptions = {}): Promise<FakeBlobServer> {
  const service = createFakeBlobService(options);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    service.handle(req, res, url).catch(() => {
      if (!res.headersSent) res.destroy();
    });
  });
  const listener = await listenOnLoopback(server);
  return { url: listener.origin, service, close: listener.close };
}
