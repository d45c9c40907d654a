/**
 * `astro-deploy-sdk/testing`: a faithful fake of the Astro API and its upload endpoints, with
 * fault injection, for your own test harnesses. Everything listens on 127.0.0.1 only.
 *
 * @packageDocumentation
 */
export { createFakeAstro, FAKE_ROUTES, type FakeAstro, type FakeAstroOptions, type FakeDeployInit, type RecordedRequest } from './fake-astro.js';
export type { FakeDeployment, FakeDeploymentInit, FakeDeploy, FakeEnvVar, FakeImportError, RolloutBehaviour } from './fake-state.js';
export { FAKE_AIRFLOW_DAGS_FOLDER } from './fake-airflow.js';
export { FaultInjector, applyFault, type FaultAction, type FaultRule, type FiredFault, type ProceedOptions } from './faults.js';
export { TestTokenMinter, type TestTokenOptions } from './tokens.js';
export * from './fake-blob.js';
export * from './fault-proxy.js';
