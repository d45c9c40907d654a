/**
 * Typed events emitted by the client's flows through the `onEvent` option. Every payload is plain
 * data (safe to serialise) and never contains a token or a SAS signature.
 */
import type { AstroErrorCode, RolloutSnapshot } from '../core/errors.js';
import type { DagsVerifiedEvent } from './verify-dags.js';

export type { DagsVerifiedEvent } from './verify-dags.js';

/** An API call is about to be retried. */
export interface ApiRetryEvent {
  type: 'api:retry';
  /** HTTP method of the call. */
  method: string;
  /** API path of the call (no query string). */
  path: string;
  /** 1-based retry number. */
  attempt: number;
  /** Wait before the retry, in milliseconds. */
  delayMs: number;
  /** Code of the error that caused the retry, when it is an SDK error. */
  errorCode?: AstroErrorCode;
  /** Redacted message of that error. */
  errorMessage: string;
}

/** Warning codes of {@link DagDeployWarningEvent}. */
export type DagDeployWarningCode =
  | 'DAG_DEPLOY_ENABLE_REMOVES_IMAGE_DAGS'
  | 'DAG_DEPLOY_DISABLE_REMOVES_DAGS'
  | 'CICD_ENFORCED';

/** Something the caller should tell its user before (or after) toggling DAG deploys. */
export interface DagDeployWarningEvent {
  type: 'dag-deploy:warning';
  /** Stable warning code. */
  code: DagDeployWarningCode;
  /** What will happen, for the caller's user. */
  message: string;
  /** The deployment concerned. */
  deploymentId: string;
}

/** setDagDeploy found the deployment already in the wanted state; nothing was sent. */
export interface DagDeployUnchangedEvent {
  type: 'dag-deploy:unchanged';
  /** The deployment concerned. */
  deploymentId: string;
  /** The (unchanged) DAG deploy setting. */
  enabled: boolean;
}

/** setDagDeploy changed the setting and confirmed it by re-reading the deployment. */
export interface DagDeployUpdatedEvent {
  type: 'dag-deploy:updated';
  /** The deployment concerned. */
  deploymentId: string;
  /** The new DAG deploy setting. */
  enabled: boolean;
}

/** One poll of waitForRollout. */
export interface RolloutPollEvent {
  type: 'rollout:poll';
  /** What this poll observed. */
  snapshot: RolloutSnapshot;
}

/** waitForRollout saw a change in any observed field. */
export interface RolloutChangeEvent {
  type: 'rollout:change';
  /** Names of the fields that changed since the previous poll. */
  changed: Array<keyof RolloutSnapshot>;
  /** What this poll observed. */
  snapshot: RolloutSnapshot;
}

/** A poll failed with a retryable error; polling goes on until the deadline. */
export interface RolloutPollErrorEvent {
  type: 'rollout:poll-error';
  /** Code of the failed poll's error. */
  errorCode?: AstroErrorCode;
  /** Its redacted message. */
  errorMessage: string;
}

/** The rollout is applied and the deployment healthy. */
export interface RolloutCompleteEvent {
  type: 'rollout:complete';
  /** The state that ended the wait. */
  snapshot: RolloutSnapshot;
}

/** Events of waitForRollout (`rollout:dags-verified` with `verifyDags`). */
export type RolloutEvent = RolloutPollEvent | RolloutChangeEvent | RolloutPollErrorEvent | RolloutCompleteEvent | DagsVerifiedEvent;

/** client.rollback chose the deploy to roll back to. */
export interface RollbackTargetEvent {
  type: 'rollback:target';
  deploymentId: string;
  /** The deploy rolled back to. */
  targetDeployId: string;
  /** The deploy that runs now (what `'previous'` counted back from), when known. */
  currentDeployId?: string;
  /** The image tag and DAG version the deployment will run. */
  imageTag?: string;
  dagTarballVersion?: string;
}

/** Astro accepted the rollback (or a lost answer was found applied, `recovered: true`). */
export interface RollbackStartedEvent {
  type: 'rollback:started';
  deploymentId: string;
  /** The deploy record the rollback created. */
  deployId: string;
  targetDeployId: string;
  recovered: boolean;
}

/** Events of client.rollback (with `wait`, the rollout events follow). */
export type RollbackEvent = RollbackTargetEvent | RollbackStartedEvent;

/** Events of setDagDeploy. */
export type DagDeployEvent = DagDeployWarningEvent | DagDeployUnchangedEvent | DagDeployUpdatedEvent;

/** Every event the client emits. */
export type ClientEvent = ApiRetryEvent | DagDeployEvent | RolloutEvent | RollbackEvent;
