/**
 * One HTTP request to Azure Blob storage through a SAS URL, with a per-try timeout. Every way it
 * can fail is mapped into the kernel's {@link Failure} shape (attached to a
 * {@link BlobRequestFailure}), so the uploader's retries follow the SDK's one retry policy; what
 * is specific to blobs stays here: the service's error code, the `retryCause` the link controller
 * reads, and 413 meaning "send smaller blocks".
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { linkSignals, toAbortError } from '../core/abort.js';
import { isAstroError } from '../core/errors.js';
import { httpRequest, type DispatcherLike } from '../core/dispatcher.js';
import { statusFailure, transportFailure, withFailure, type Failure } from '../core/failure.js';
import { redact } from '../core/redact.js';
import { SDK_VERSION } from '../version.js';
import type { BlobSas } from './sas.js';
import { operationUrl } from './sas.js';
import type { UploadPhase, UploadRetryCause } from './types.js';

/**
 * Chunk size the body is handed to the socket in; also the granularity of `bytesSent`. 1 MiB rather
 * than 64 KiB: on a fast link the per-chunk stream overhead cost ~30 % of this process's CPU in the
 * upload benchmark (measured), while progress granularity of 1 MiB is still fine for rendering.
 */
export const BODY_CHUNK_BYTES = 1024 * 1024;

/** A successful (2xx) answer. */
export interface BlobResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Body text when `readBody` was set, else empty. */
  body: string;
  /** Time from sending the request to the end of the response, in milliseconds. */
  elapsedMs: number;
}

/** The `retryCause` of a failure: `http-<status>`, else the transport kind (`other` is never retried). */
export function retryCauseOf(failure: Failure): UploadRetryCause | 'other' {
  switch (failure.kind) {
    case 'status':
      return `http-${failure.status ?? 0}`;
    case 'connect':
    case 'reset':
    case 'timeout':
      return failure.kind;
    default:
      return 'other';
  }
}

/**
 * A request that failed: by status, by transport error, or by the per-try timeout. Its kernel
 * {@link Failure} is attached (read it with `failureOf`) and also kept as `failure`.
 */
export class BlobRequestFailure extends Error {
  constructor(
    message: string,
    readonly failure: Failure,
    /** How long the request ran before it failed, in milliseconds. */
    readonly elapsedMs: number,
    readonly details: { serviceCode?: string; error?: unknown } = {},
  ) {
    super(redact(message));
    this.name = 'BlobRequestFailure';
    withFailure(this, failure);
  }
  /** What the link controller and `upload:retry` events call this failure. */
  get retryCause(): UploadRetryCause | 'other' {
    return retryCauseOf(this.failure);
  }
  get status(): number | undefined {
    return this.failure.status;
  }
  get serviceCode(): string | undefined {
    return this.details.serviceCode;
  }
  /**
   * The service computed another MD5 of the body than the `Content-MD5` we sent: the bytes changed
   * on the way (or the source changed between hashing and sending). Azure answers 400
   * `Md5Mismatch`; Azurite 400 `InvalidOperation` "Provided contentMD5 doesn't match".
   */
  get digestMismatch(): boolean {
    return this.status === 400 && (this.serviceCode === 'Md5Mismatch' || (this.serviceCode === 'InvalidOperation' && /contentMD5 doesn't match/i.test(this.message)));
  }
  /** A failure that says the request (or the link) is too slow or too big for some hop: send smaller. */
  get suggestsSmallerBlocks(): boolean {
    return this.retryCause === 'http-408' || this.retryCause === 'timeout' || this.retryCause === 'http-413';
  }
}

/**
 * A request body: bytes in memory, or `byteLength` bytes produced on demand by `chunks()` (a file
 * block's pieces, handed to the socket one at a time).
 */
export type BlobBody = Uint8Array | { readonly byteLength: number; chunks(): AsyncIterable<Uint8Array> };

/** One request. */
export interface BlobRequest {
  method: 'GET' | 'PUT' | 'HEAD';
  phase: UploadPhase;
  /** Query parameters added to the SAS URL (`comp`, `blockid`, ...). */
  params: Record<string, string>;
  headers: Record<string, string>;
  body?: BlobBody;
  timeoutMs: number;
  /** Read and return the body of a success (Get Block List). */
  readBody?: boolean;
  /** Called as body bytes are handed to the socket. */
  onBodyBytes?: (bytes: number) => void;
}

/** Shared context of every request of one upload. */
export interface BlobHttpContext {
  sas: BlobSas;
  /** The caller's dispatcher; without one, `HTTPS_PROXY`/`HTTP_PROXY` are honoured (see `resolveDispatcher`). */
  dispatcher: DispatcherLike | undefined;
  signal: AbortSignal | undefined;
}

async function* chunked(body: BlobBody, onBytes: ((n: number) => void) | undefined): AsyncGenerator<Uint8Array> {
  if (!(body instanceof Uint8Array)) {
    for await (const chunk of body.chunks()) {
      onBytes?.(chunk.byteLength);
      yield chunk;
    }
    return;
  }
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
    const res = await httpRequest(
      url,
      {
        method: req.method,
        headers,
        body: req.body
          ? Readable.from(chunked(req.body, req.onBodyBytes), { objectMode: false, highWaterMark: BODY_CHUNK_BYTES })
          : undefined,
        signal: linked.signal,
      },
      ctx.dispatcher,
    );
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
    throw new BlobRequestFailure(
      `${what} answered ${status}${serviceCode ? ` ${serviceCode}` : ''}${apiMessage ? `: ${apiMessage}` : ''}`,
      statusFailure(status, resHeaders),
      elapsed(),
      serviceCode === undefined ? {} : { serviceCode },
    );
  } catch (error) {
    if (error instanceof BlobRequestFailure) throw error;
    if (ctx.signal?.aborted) throw withFailure(toAbortError(ctx.signal), transportFailure(error, { aborted: true }));
    // The body's source failed (a file that changed or cannot be read): its own typed error.
    if (isAstroError(error)) throw error;
    const timedOut = timeout.signal.aborted;
    const failure = transportFailure(error, { timedOut });
    const message = timedOut
      ? `${what} got no answer within ${req.timeoutMs} ms`
      : `${what} failed: ${failure.code ?? (error as Error | undefined)?.name ?? 'error'} ${(error as Error | undefined)?.message ?? String(error)}`;
    throw new BlobRequestFailure(message, failure, elapsed(), { error });
  } finally {
    clearTimeout(timer);
    linked.dispose();
  }
}
