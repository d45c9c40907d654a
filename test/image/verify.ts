/**
 * Independent checks of a pushed image: skopeo's view of the registry, and pulling the image back
 * into the engine and running it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { dockerCli, getTestDocker } from '../helpers/docker.js';

const run = promisify(execFile);

/** What `skopeo inspect` reports. */
export interface SkopeoInspect {
  Digest: string;
  Architecture: string;
  Os: string;
  Labels: Record<string, string> | null;
  Layers: string[];
}

/** `skopeo inspect docker://ref` (plain HTTP allowed), optionally `--raw` for the manifest bytes. */
export async function skopeoInspect(ref: string, creds?: { username: string; password: string }, raw = false): Promise<string> {
  const args = ['inspect', '--tls-verify=false', ...(raw ? ['--raw'] : [])];
  if (creds) args.push('--creds', `${creds.username}:${creds.password}`);
  args.push(`docker://${ref}`);
  try {
    const { stdout } = await run('skopeo', args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT') throw new Error('skopeo is not installed (apt-get install -y skopeo)');
    throw new Error(`skopeo inspect ${ref} failed: ${e.stderr ?? e.message}`);
  }
}

export async function skopeoInfo(ref: string, creds?: { username: string; password: string }): Promise<SkopeoInspect> {
  return JSON.parse(await skopeoInspect(ref, creds)) as SkopeoInspect;
}

/** Pull `ref` into the test engine through the Engine API (with credentials when given). */
export async function pullIntoEngine(ref: string, creds?: { username: string; password: string; serveraddress: string }): Promise<void> {
  const { docker } = await getTestDocker();
  const stream = await docker.pull(ref, creds ? { authconfig: creds } : {});
  const lines: Array<{ error?: string; errorDetail?: { message?: string } }> = await new Promise((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => (err ? reject(err) : resolve(out))),
  );
  const failed = lines.find((l) => l.error || l.errorDetail);
  if (failed) throw new Error(`pull of ${ref} failed: ${failed.error ?? failed.errorDetail?.message}`);
}

/** `docker run --rm ref args...`, returning stdout. */
export async function runInEngine(ref: string, args: string[]): Promise<string> {
  return dockerCli(['run', '--rm', '--network', 'none', ref, ...args], 60_000);
}
