/**
 * Verify the DAGs after a rollout: ask the deployment's own Airflow REST API (its
 * `webServerAirflowApiUrl`, with the same API token) for import errors, and report those in the
 * files the deploy shipped. The CLI only checks the deployment's health; a HEALTHY deployment
 * with DAGs that fail to import is the failure users otherwise find in the Airflow UI, too late.
 *
 * Airflow 2 answers on `/api/v1/importErrors` with absolute filenames (under
 * `/usr/local/airflow/dags` on Astro), Airflow 3 on `/api/v2/importErrors` with filenames relative
 * to the DAG bundle. The GETs go through the kernel's retry loop (idempotent: 408, 429, 5xx,
 * resets and timeouts are retried with backoff).
 */
import { z } from 'zod';
import { sleep } from '../core/abort.js';
import type { DispatcherLike } from '../core/dispatcher.js';
import {
  AstroApiError,
  AstroConfigError,
  AstroSchemaError,
  DagVerificationError,
  ErrorCodes,
  isAstroError,
  type AstroErrorCode,
  type DagImportError,
} from '../core/errors.js';
import { isTransientStatus, statusFailure, withFailure } from '../core/failure.js';
import { requestTextOnce } from '../core/http-try.js';
import type { Logger } from '../core/logger.js';
import { redact, redactUrl } from '../core/redact.js';
import { retryPolicy, withRetries, type RetryOptions } from '../core/retry.js';
import { isTimerMs, TIMER_MS_RULE } from '../core/timer-ms.js';
import { assertSecureUrl } from '../core/url-safety.js';
import { SDK_VERSION } from '../version.js';
import { validateRetryOptions } from './options.js';
import type { Deployment } from './schemas.js';
import { codeForStatus, type RequestOptions } from './transport.js';

/** Options of `wait.verifyDags` (`true` takes every default). */
export interface VerifyDagsOptions {
  /**
   * Throw {@link DagVerificationError} instead of reporting: `ASTRO_DAGS_IMPORT_ERRORS` when a
   * shipped file has an import error, `ASTRO_DAGS_VERIFY_UNAVAILABLE` when the Airflow API cannot
   * be asked. The deploy stays live either way. @default false
   */
  failOnImportErrors?: boolean;
  /**
   * Wait this long after the rollout before asking, in milliseconds: Airflow parses new files in
   * its own time (`min_file_process_interval`, 30 s by default), so right after a rollout the
   * errors may still be those of the previous parse. @default 0
   */
  settleMs?: number;
  /**
   * The files to report on, relative to the dags folder. @default the files the flow shipped in
   * its bundle; every file when the flow shipped none (an image deploy) and for `waitForRollout`
   */
  files?: string[];
}

/** What the verification found. */
export interface DagVerification {
  /** False when the Airflow API could not be asked (`error` says why); nothing was verified. */
  checked: boolean;
  /** The Airflow API asked (`.../api/v1` or `.../api/v2`), when one was known. */
  apiUrl?: string;
  /** Import errors in the files reported on (the shipped files, or every file). */
  importErrors: DagImportError[];
  /** Import errors Airflow reported for other files (not shipped by this deploy). */
  otherImportErrors: DagImportError[];
  /** Why `checked` is false. */
  error?: { code: AstroErrorCode; message: string };
}

/** The event of a verification, after `rollout:complete`. */
export interface DagsVerifiedEvent {
  type: 'rollout:dags-verified';
  /** The deployment verified. */
  deploymentId: string;
  /** False when the Airflow API could not be asked. */
  checked: boolean;
  /** Import errors in the files reported on. */
  importErrors: number;
  /** Import errors in other files. */
  otherImportErrors: number;
}

/** What verification needs from the client. */
export interface VerifyContext {
  /** The API token, sent as `Authorization: Bearer` to the deployment's Airflow. */
  token?: string | undefined;
  /** The client's dispatcher (proxies, custom TLS). @default the environment's proxy, else undici's global */
  dispatcher?: DispatcherLike | undefined;
  /** Where retries are noted. */
  logger?: Logger | undefined;
  /** The client's API retry settings; the call's `request.retry` is merged over them. */
  retry?: RetryOptions | undefined;
}

/** Where Airflow 2 on Astro keeps the DAGs; its import errors name files under it. */
export const ASTRO_DAGS_FOLDER = '/usr/local/airflow/dags';

/** The deployment's Airflow REST API base (`https://host/path/api/v1` or `/v2`), or an error saying why there is none. */
export function airflowApiBase(deployment: Deployment): string {
  const raw = deployment.webServerAirflowApiUrl?.trim();
  if (!raw) {
    throw new DagVerificationError(
      ErrorCodes.DAGS_VERIFY_UNAVAILABLE,
      `Deployment ${deployment.id} reports no webServerAirflowApiUrl, so its Airflow API cannot be asked for import errors.`,
      { deploymentId: deployment.id, importErrors: [] },
    );
  }
  // Astro gives the URL without a scheme; https is meant.
  let url = (/^https?:\/\//i.test(raw) ? raw : `https://${raw}`).replace(/\/+$/, '');
  if (!/\/api\/v[12]$/.test(url)) {
    const major = (deployment.airflowVersion ?? '').split('.')[0] || (/^3\.\d+-\d+/.test(deployment.astroRuntimeVersion ?? deployment.runtimeVersion ?? '') ? '3' : '2');
    url += major === '3' ? '/api/v2' : '/api/v1';
  }
  try {
    new URL(url);
  } catch {
    throw new DagVerificationError(ErrorCodes.DAGS_VERIFY_UNAVAILABLE, `Deployment ${deployment.id} reports an Airflow API URL that does not parse: ${redactUrl(raw)}.`, {
      deploymentId: deployment.id,
      importErrors: [],
    });
  }
  assertSecureUrl(url, 'The deployment Airflow API URL', false, (message) => new DagVerificationError(ErrorCodes.DAGS_VERIFY_UNAVAILABLE, message, { deploymentId: deployment.id, importErrors: [] }));
  return url;
}

const importErrorsSchema = z.looseObject({
  import_errors: z.array(
    z.looseObject({
      filename: z.string().nullish(),
      stack_trace: z.string().nullish(),
      timestamp: z.string().nullish(),
    }),
  ),
  total_entries: z.number().nullish(),
});

/** One GET of the Airflow API, with the per-try timeout; failures carry the kernel's {@link Failure}. */
async function getOnce(url: string, ctx: VerifyContext, options: RequestOptions): Promise<z.output<typeof importErrorsSchema>> {
  const path = new URL(url).pathname;
  // Through the dispatcher's own request method, so undici 8 dispatchers work (#12).
  const { status, headers, text } = await requestTextOnce(url, {
    method: 'GET',
    headers: {
      accept: 'application/json',
      'user-agent': `astro-deploy-sdk/${SDK_VERSION} node/${process.version}`,
      ...(ctx.token ? { authorization: `Bearer ${ctx.token}` } : {}),
    },
    signal: options.signal,
    timeoutMs: options.timeoutMs ?? 30_000,
    dispatcher: ctx.dispatcher,
    what: `GET ${path} on the deployment's Airflow`,
    peer: "the deployment's Airflow API",
  });
  if (status < 200 || status > 299) {
    let detail = '';
    try {
      const body = JSON.parse(text) as { detail?: unknown; title?: unknown };
      detail = typeof body.detail === 'string' ? body.detail : typeof body.title === 'string' ? body.title : '';
    } catch {
      // Not JSON: a proxy answered.
    }
    const code = codeForStatus(status);
    const failure = statusFailure(status, headers);
    throw withFailure(
      new AstroApiError(
        code,
        `GET ${path} on the deployment's Airflow failed with HTTP ${status}${detail ? `: ${detail}` : ''}.${status === 401 || status === 403 ? ' The API token needs access to the deployment’s Airflow (a Deployment, Workspace or Organization API token with at least viewer rights).' : ''}`,
        { status, method: 'GET', path, ...(detail ? { apiMessage: redact(detail) } : {}), ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}) },
        { retryable: isTransientStatus(status) },
      ),
      failure,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new AstroSchemaError(`GET ${path} on the deployment's Airflow answered ${status} with a body that is not JSON.`, path, ['(root)'], { cause });
  }
  const parsed = importErrorsSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => (i.path.length ? i.path.join('.') : '(root)'));
    throw new AstroSchemaError(`GET ${path} on the deployment's Airflow answered with an unexpected shape (fields: ${fields.join(', ')}).`, path, fields);
  }
  return parsed.data;
}

/** Every import error of the deployment's Airflow, following pages of 100. */
export async function fetchImportErrors(base: string, ctx: VerifyContext, options: RequestOptions): Promise<Array<{ filename: string; stackTrace: string; timestamp?: string }>> {
  const callRetry = validateRetryOptions('request.retry', options.retry);
  const policy = retryPolicy(callRetry, { defaults: ctx.retry, idempotent: true });
  const out: Array<{ filename: string; stackTrace: string; timestamp?: string }> = [];
  for (let offset = 0; ; ) {
    const url = `${base}/importErrors?limit=100&offset=${offset}`;
    const page = await withRetries(() => getOnce(url, ctx, options), {
      policy,
      signal: options.signal,
      logger: ctx.logger,
      onRetry: (info) => ctx.logger?.warn(`retrying GET importErrors on the deployment's Airflow in ${info.delayMs} ms`, { attempt: info.attempt }),
    });
    for (const e of page.import_errors) {
      out.push({ filename: e.filename ?? '', stackTrace: e.stack_trace ?? '', ...(e.timestamp ? { timestamp: e.timestamp } : {}) });
    }
    offset += page.import_errors.length;
    if (page.import_errors.length === 0 || offset >= (page.total_entries ?? offset) || offset >= 10_000) return out;
  }
}

/**
 * The shipped file an Airflow `filename` names: the longest trailing part of it that is a shipped
 * path (`/usr/local/airflow/dags/etl/dag.py` and `etl/dag.py` both name `etl/dag.py`). Without a
 * file list, the filename relative to Astro's dags folder.
 */
export function shippedFileOf(filename: string, files: ReadonlySet<string> | undefined): string | undefined {
  const clean = filename.replace(/\\/g, '/');
  if (!files) {
    if (clean.startsWith(`${ASTRO_DAGS_FOLDER}/`)) return clean.slice(ASTRO_DAGS_FOLDER.length + 1);
    return clean.replace(/^\/+/, '');
  }
  const parts = clean.split('/').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const candidate = parts.slice(i).join('/');
    if (files.has(candidate)) return candidate;
  }
  return undefined;
}

/** Check `verifyDags` options before a wait starts; throws `ASTRO_CONFIG_INVALID_OPTION`. */
export function validateVerifyDagsOptions(verify: VerifyDagsOptions): void {
  if (verify.settleMs !== undefined && verify.settleMs !== 0 && !isTimerMs(verify.settleMs)) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `verifyDags.settleMs must be 0 or ${TIMER_MS_RULE}; got ${String(verify.settleMs)}.`);
  }
}

/**
 * Ask the deployment's Airflow for import errors once the rollout is done. Resolves with what was
 * found (or `checked: false` when the API could not be asked); with `failOnImportErrors`, throws
 * {@link DagVerificationError} instead of resolving with errors.
 */
export async function verifyDags(
  ctx: VerifyContext,
  deployment: Deployment,
  verify: VerifyDagsOptions,
  options: RequestOptions,
  emit: (e: DagsVerifiedEvent) => void,
): Promise<DagVerification> {
  validateVerifyDagsOptions(verify);
  if (verify.settleMs) await sleep(verify.settleMs, options.signal);
  const files = verify.files ? new Set(verify.files.map((f) => f.replace(/\\/g, '/').replace(/^\/+/, ''))) : undefined;
  let result: DagVerification;
  let apiUrl: string | undefined;
  try {
    apiUrl = airflowApiBase(deployment);
    const all = await fetchImportErrors(apiUrl, ctx, options);
    const ours: DagImportError[] = [];
    const others: DagImportError[] = [];
    for (const e of all) {
      const file = shippedFileOf(e.filename, files);
      const entry: DagImportError = { file: file ?? e.filename, filename: e.filename, stackTrace: redact(e.stackTrace), ...(e.timestamp ? { timestamp: e.timestamp } : {}) };
      (file !== undefined ? ours : others).push(entry);
    }
    result = { checked: true, apiUrl, importErrors: ours, otherImportErrors: others };
  } catch (error) {
    if (isAstroError(error, ErrorCodes.ABORTED) || !isAstroError(error)) throw error;
    result = {
      checked: false,
      ...(apiUrl ? { apiUrl } : {}),
      importErrors: [],
      otherImportErrors: [],
      error: { code: error.code, message: error.message },
    };
    emit({ type: 'rollout:dags-verified', deploymentId: deployment.id, checked: false, importErrors: 0, otherImportErrors: 0 });
    if (verify.failOnImportErrors) {
      throw new DagVerificationError(
        ErrorCodes.DAGS_VERIFY_UNAVAILABLE,
        `The deploy is live, but the DAGs could not be verified: the Airflow API of deployment ${deployment.id} could not be asked for import errors (${error.message}).`,
        { deploymentId: deployment.id, importErrors: [] },
        { cause: error },
      );
    }
    return result;
  }
  emit({ type: 'rollout:dags-verified', deploymentId: deployment.id, checked: true, importErrors: result.importErrors.length, otherImportErrors: result.otherImportErrors.length });
  if (verify.failOnImportErrors && result.importErrors.length > 0) {
    const names = result.importErrors.map((e) => e.file);
    throw new DagVerificationError(
      ErrorCodes.DAGS_IMPORT_ERRORS,
      `The deploy is live and the deployment healthy, but Airflow reports import errors in ${names.length} shipped file${names.length === 1 ? '' : 's'}: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}. Those DAGs do not run: fix them and deploy again, or roll back (client.rollback({ deploymentId: '${deployment.id}', to: 'previous' })).`,
      { deploymentId: deployment.id, importErrors: result.importErrors },
    );
  }
  return result;
}
