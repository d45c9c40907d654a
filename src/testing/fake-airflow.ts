/**
 * The fake deployment's own Airflow REST API: the import-errors endpoint of Airflow 2
 * (`/api/v1/importErrors`) and Airflow 3 (`/api/v2/importErrors`), served by the fake Astro under
 * `/airflow/<namespace>/api/...`, the deployment's `webServerAirflowApiUrl`. A deployment answers
 * only on the API of its Airflow major version (Airflow 3 removed `/api/v1`), pages with `limit`
 * (default 100) and `offset`, and reports the import errors a test set with `setImportErrors`.
 */
import type { FakeDeployment, FakeImportError } from './fake-state.js';

/** Where Airflow 2 on Astro reads the DAGs from: the absolute `filename` prefix of its import errors. */
export const FAKE_AIRFLOW_DAGS_FOLDER = '/usr/local/airflow/dags';

/** A request to the fake Airflow API: its route name (for faults and the request log) and target. */
export interface AirflowRoute {
  route: 'airflow.importErrors' | 'airflow.unknown';
  namespace: string;
  version: 'v1' | 'v2' | undefined;
}

/** Route of a path under `/airflow/`. */
export function airflowRouteOf(method: string, pathname: string): AirflowRoute {
  const m = /^\/airflow\/([^/]+)\/api\/(v1|v2)\/importErrors\/?$/.exec(pathname);
  if (m && method === 'GET') return { route: 'airflow.importErrors', namespace: decodeURIComponent(m[1]!), version: m[2] as 'v1' | 'v2' };
  const ns = /^\/airflow\/([^/]+)/.exec(pathname)?.[1];
  return { route: 'airflow.unknown', namespace: ns ? decodeURIComponent(ns) : '', version: undefined };
}

/** Airflow's problem body (RFC 7807, as its API answers errors). */
export function airflowProblem(status: number, title: string, detail?: string): Record<string, unknown> {
  return { type: 'about:blank', title, status, ...(detail ? { detail } : {}) };
}

function airflowMajor(d: FakeDeployment): '2' | '3' {
  return /^3\.\d+-\d+/.test(d.runtimeVersion) ? '3' : '2';
}

/**
 * The answer of `GET .../importErrors` for deployment `d`: 404 when the version is not its
 * Airflow's, else one page of `{ import_errors, total_entries }` in that version's shape.
 */
export function importErrorsAnswer(d: FakeDeployment, version: 'v1' | 'v2', url: URL): { status: number; body: unknown } {
  const major = airflowMajor(d);
  if ((version === 'v2') !== (major === '3')) {
    return { status: 404, body: airflowProblem(404, 'Not Found', `The requested URL was not found on this Airflow ${major} server.`) };
  }
  const limit = Math.max(0, Number(url.searchParams.get('limit') ?? 100) || 0);
  const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0);
  const all = d.importErrors.map((e, i) => view(e, i + 1, major));
  return { status: 200, body: { import_errors: all.slice(offset, offset + limit), total_entries: all.length } };
}

function view(e: FakeImportError, id: number, major: '2' | '3'): Record<string, unknown> {
  const timestamp = e.timestamp ?? new Date().toISOString();
  if (major === '3') return { import_error_id: id, timestamp, filename: e.filename, bundle_name: 'dags-folder', stack_trace: e.stackTrace };
  return { import_error_id: id, timestamp, filename: `${FAKE_AIRFLOW_DAGS_FOLDER}/${e.filename}`, stack_trace: e.stackTrace };
}
