/**
 * `client.deployments.find({ name, workspaceId? })`: the CLI's `--deployment-name` pick, without
 * the prompt. Exactly one deployment with that name is the answer; none or several is a typed
 * error that lists what was found, so a script never deploys to a guess.
 */
import { DeploymentLookupError, ErrorCodes, type DeploymentMatch } from '../core/errors.js';
import { AstroConfigError } from '../core/errors.js';
import type { Deployment } from './schemas.js';
import type { RequestOptions } from './transport.js';

/** Parameters of `client.deployments.find`. */
export interface FindDeploymentParams {
  /** The deployment's name, exactly as shown in the Astro UI (case-sensitive). */
  name: string;
  /** Look only in this workspace. @default every workspace the token can see */
  workspaceId?: string;
}

/** What `find` needs: the paged list of deployments. */
export type ListAllDeployments = (params: { workspaceIds?: string[]; names?: string[] }, options?: RequestOptions) => Promise<Deployment[]>;

/** Implementation of `client.deployments.find`; see there. */
export async function findDeployment(listAll: ListAllDeployments, params: FindDeploymentParams, options?: RequestOptions): Promise<Deployment> {
  const { name, workspaceId } = params ?? ({} as FindDeploymentParams);
  if (typeof name !== 'string' || name.trim() === '') {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, 'deployments.find needs a non-empty name.');
  }
  if (workspaceId !== undefined && (typeof workspaceId !== 'string' || workspaceId === '')) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, 'deployments.find: workspaceId must be a non-empty string when given.');
  }
  // `names` narrows the pages on the server; the exact comparison here is what decides.
  const listed = await listAll({ names: [name], ...(workspaceId ? { workspaceIds: [workspaceId] } : {}) }, options);
  const found = listed.filter((d) => d.name === name && (workspaceId === undefined || d.workspaceId === workspaceId));
  if (found.length === 1) return found[0]!;
  const where = workspaceId ? ` in workspace ${workspaceId}` : '';
  if (found.length === 0) {
    throw new DeploymentLookupError(
      ErrorCodes.DEPLOYMENT_NOT_FOUND,
      `No deployment named "${name}"${where} is visible to this token. Check the name (it is case-sensitive)${workspaceId ? ' and the workspace' : ''}, or pass the deployment ID.`,
      { deploymentName: name, ...(workspaceId ? { workspaceId } : {}), matches: [] },
    );
  }
  const matches: DeploymentMatch[] = found.map((d) => ({
    id: d.id,
    name: d.name,
    workspaceId: d.workspaceId,
    ...(d.workspaceName ? { workspaceName: d.workspaceName } : {}),
  }));
  const listedText = matches.map((m) => `${m.id} (workspace ${m.workspaceName ? `${m.workspaceName}, ` : ''}${m.workspaceId})`).join(', ');
  throw new DeploymentLookupError(
    ErrorCodes.DEPLOYMENT_AMBIGUOUS,
    `${found.length} deployments are named "${name}"${where}: ${listedText}. Pass the deployment ID${workspaceId ? '' : ', or workspaceId to narrow the search'}.`,
    { deploymentName: name, ...(workspaceId ? { workspaceId } : {}), matches },
  );
}
