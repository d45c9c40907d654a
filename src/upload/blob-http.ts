/**
 * One HTTP request to Azure Blob storage through a SAS URL, with a per-try timeout, and a
 * classification of every way it can fail (retry or not, shrink the block or not). The retry
 * loops live in the uploader, which needs per-block decisions this layer cannot make.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { linkSignals, toAbortError } from '../core/abort.js';
import { redact } from '../core/redact.js';
import { parseRetryAfter } from '../core/retry.js';
import { SDK_VERSION } from '../version.js';
import type { BlobSas } from './sas.js';
import { operationUrl } from './sas.js';
import type { UploadPhase, UploadRetryCause } from './types.js';

/**
 * Chunk size the body is handed to the socket in; also the granularity of `bytesSent`. 1 MiB rather
 * than 64 KiB: on a fast link the per-chunk stream overhead cost ~30 % of this process's CPU in the
 * upload benchmark (measured), while progress granularity of 1 MiB is still fine for rendering.
 */
const BODY_CHUNK_BYTES = 1024 * 1024;

/** Transport error codes that mean the request never reached the server. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
/** Statuses worth another try: proxies' timeouts, throttling and transient server faults. */
const RETRYABLE_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/** A successful (2xx) answer. */
export interface BlobResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Body text when `readBody` was set, else empty. */
  body: string;
  /** Time from sending the request to the end of the response, in milliseconds. */
  elapsedMs: number;
}

/** A request that failed: by status, by transport error, or by the per-try timeout. */
export class BlobRequestFailure extends Error {
  constructor(
    message: string,
    readonly retryCause: UploadRetryCause,
    readonly retryable: boolean,
    readonly elapsedMs: number,
    readonly details: { status?: number; serviceCode?: string; retryAfterMs?: number; error?: unknown } = {},
  ) {
    super(redact(message));
    this.name = 'BlobRequestFailure';
  }
  get status(): number | undefined {
    return this.details.status;
  }
  get serviceCode(): string | undefined {
    return this.details.serviceCode;
  }
  /** A failure that says the request (or the link) is too slow or too big for some hop: send smaller. */
  get suggestsSmallerBlocks(): boolean {
    return this.retryCause === 'http-408' || this.retryCause === 'timeout' || this.retryCause === 'http-413';
  }
}

/** One request. */
export interface BlobRequest {
  method: 'GET' | 'PUT' | 'HEAD';
  phase: UploadPhase;
  /** Query parameters added to the SAS URL (`comp`, `blockid`, ...). */
  params: Record<string, string>;
  headers: Record<string, string>;
  body?: Uint8Array;
  timeoutMs: number;
  /** Read and return the body of a success (Get Block List). */
  readBody?: boolean;
  /** Called as body bytes are handed to the socket. */
  onBodyBytes?: (bytes: number) => void;
}

/** Shared context of every request of one upload. */
export interface BlobHttpContext {
  sas: BlobSas;
  dispatcher: Dispatcher | undefined;
  signal: AbortSignal | undefined;
}

async function* chunked(body: Uint8Array, onBytes: ((n: number) => void) | undefined): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < body.byteLength; at += BODY_CHUNK_BYTES) {
    const chunk = body.subarray(at, Math.min(body.byteLength, at + BODY_CHUNK_BYTES));
    onBytes?.(chunk.byteLength);
    yield chunk;
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Service error code from `x-ms-error-code` or the XML `<Code>`. */
function serviceCodeOf(headers: Record<string, string | string[] | undefined>, body: string): string | undefined {
  return header(headers, 'x-ms-error-code') ?? /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
}

/** Send one request. Resolves with a 2xx answer; rejects with {@link BlobRequestFailure} or `AstroAbortError`. */
export async function sendBlobRequest(ctx: BlobHttpContext, req: BlobRequest): Promise<BlobResponse> {
  const timeout = new AbortController();
  const linked = linkSignals(ctx.signal, timeout.signal);
  const timer = setTimeout(() => timeout.abort(new Error('per-try timeout')), req.timeoutMs);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const url = operationUrl(ctx.sas, req.params);
  const what = `${req.phase} ${ctx.sas.displayUrl}`;
  try {
    const headers: Record<string, string> = {
      'user-agent': `astro-deploy-sdk/${SDK_VERSION}`,
      'x-ms-client-request-id': randomUUID(),
      ...req.headers,
    };
    if (req.body) headers['content-length'] = String(req.body.byteLength);
    const res = await request(url, {
      method: req.method,
      headers,
      body: req.body
        ? Readable.from(chunked(req.body, req.onBodyBytes), { objectMode: false, highWaterMark: BODY_CHUNK_BYTES })
        : undefined,
      dispatcher: ctx.dispatcher,
      signal: linked.signal,
    });
    const resHeaders = res.headers as Record<string, string | string[] | undefined>;
    if (res.statusCode >= 200 && res.statusCode < 300) {
      const body = req.readBody ? await res.body.text() : (await res.body.dump(), '');
      return { status: res.statusCode, headers: resHeaders, body, elapsedMs: elapsed() };
    }
    let body = '';
    try {
      body = (await res.body.text()).slice(0, 4096);
    } catch {
      // The error body is informational only; a connection closed after the status line is fine.
    }
    const status = res.statusCode;
    const serviceCode = serviceCodeOf(resHeaders, body);
    const apiMessage = /<Message>([^<]*)<\/Message>/.exec(body)?.[1]?.split('\n')[0];
    const retryAfterMs = parseRetryAfter(header(resHeaders, 'retry-after'));
    const retryable = RETRYABLE_STATUSES.has(status) || status === 413;
    throw new BlobRequestFailure(
      `${what} answered ${status}${serviceCode ? ` ${serviceCode}` : ''}${apiMessage ? `: ${apiMessage}` : ''}`,
      `http-${status}`,
      retryable,
      elapsed(),
      { status, serviceCode, retryAfterMs },
    );
  } catch (error) {
    if (error instanceof BlobRequestFailure) throw error;
    if (ctx.signal?.aborted) throw toAbortError(ctx.signal);
    if (timeout.signal.aborted) {
      throw new BlobRequestFailure(`${what} got no answer within ${req.timeoutMs} ms`, 'timeout', true, elapsed(), {
        error,
      });
    }
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string') {
      const cause: UploadRetryCause = CONNECT_CODES.has(code) ? 'connect' : code.includes('TIMEOUT') ? 'timeout' : 'reset';
      throw new BlobRequestFailure(`${what} failed: ${code} ${(error as Error).message}`, cause, true, elapsed(), {
        error,
      });
    }
    throw error;
  } finally {
    clearTimeout(timer);
    linked.dispose();
  }
}
