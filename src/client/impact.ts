/**
 * What a deploy does to the running deployment, as Astronomer's "Deploy code to Astro" page says,
 * stated before the deploy is created (a `deploy:impact` event) and in a dry run's plan.
 */
import type { DeployType } from './schemas.js';

/** Longest time Astro lets a task run on a worker of the previous code after an image deploy, in hours. */
export const IMAGE_DEPLOY_TASK_GRACE_HOURS = 24;

/** What a deploy of one type does to running work. */
export interface DeployImpact {
  /** The deploy type this is about. */
  deployType: DeployType;
  /** Whether Airflow components restart (image deploys: yes; DAG-only deploys: no). */
  restartsComponents: boolean;
  /** For image deploys: how long a running task may go on on a worker of the previous code, in hours. */
  taskGraceHours?: number;
  /** One line for a log or a confirmation prompt. */
  summary: string;
  /** What happens, point by point, in Astronomer's terms. */
  details: string[];
}

/** The `deploy:impact` event: emitted before the deploy is created. */
export interface DeployImpactEvent {
  type: 'deploy:impact';
  /** The deployment about to be deployed to. */
  deploymentId: string;
  /** What the deploy does to running work. */
  impact: DeployImpact;
}

/** The impact of a deploy of `deployType`. */
export function impactOf(deployType: DeployType): DeployImpact {
  if (deployType === 'DAG_ONLY') {
    return {
      deployType,
      restartsComponents: false,
      summary: 'DAG-only deploy: nothing restarts; running tasks finish on the code they started with.',
      details: [
        'No Airflow component restarts: the new DAG bundle is downloaded by the running scheduler, DAG processor and workers.',
        'Running tasks finish on the code they started with; tasks that start after the bundle arrives run the new code.',
      ],
    };
  }
  return {
    deployType,
    restartsComponents: true,
    taskGraceHours: IMAGE_DEPLOY_TASK_GRACE_HOURS,
    summary: `Image deploy: Airflow components restart on the new image; running tasks continue on their current workers for up to ${IMAGE_DEPLOY_TASK_GRACE_HOURS} hours.`,
    details: [
      'Every Airflow container except the webserver and some Celery workers is terminated gracefully and restarts on the new code.',
      `Running tasks continue on the existing workers; a task still running after ${IMAGE_DEPLOY_TASK_GRACE_HOURS} hours is killed, marked as a zombie and retried according to its retry policy.`,
      'New workers start the downstream tasks of DAG runs in flight on the new code, so a run can fail from mixing versions; restart such a run as a whole.',
      "A task's `execution_timeout` bounds it sooner than the grace period: set it on long tasks.",
    ],
  };
}
