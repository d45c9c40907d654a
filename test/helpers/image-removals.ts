/**
 * vitest global setup of the services tier: removes, once every file has finished, the images the
 * tests handed to `removeImagesAfterRun` (see test/helpers/docker.ts for why they wait), and then
 * every dangling image created during the run. A test that builds twice under one tag (a second
 * deploy after a change) leaves its first image untagged, which removing the tag does not reach;
 * on the private daemon's vfs storage each is a full copy of its layers, and they had filled 68 GB
 * of /tmp over a day of runs. The run fails when one of them cannot be removed. BuildKit's cache
 * goes too: on vfs its snapshots of the runtime image took 1.4 GB after one run of the build tests,
 * and the daemon reports them as a few kilobytes, so nothing else would notice them grow.
 * Runs on one daemon take turns (CI runs alone): a run going on at the same time could lose an
 * untagged image or a cache record it has not used yet.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { TestDockerStore } from './docker.js';

/** The setup for the daemon of `store`, removing the images listed in the file `list`. */
export function imageRemovals(store: TestDockerStore, list: string | undefined): () => () => Promise<void> {
  return () => {
    // Seconds, as the daemon reports `Created`; one back so a build in the first second counts.
    const startedAt = Math.floor(Date.now() / 1000) - 1;
    return () => removeLeftovers(store, list, startedAt);
  };
}

export default imageRemovals('classic', process.env.ASTRO_TEST_IMAGE_REMOVALS);

async function removeLeftovers(store: TestDockerStore, list: string | undefined, startedAt: number): Promise<void> {
  const { runningTestDocker } = await import('./docker.js');
  const docker = (await runningTestDocker(store))?.docker;
  if (!docker) return;
  if (list && existsSync(list)) {
    for (const ref of new Set(readFileSync(list, 'utf8').split('\n').filter(Boolean))) {
      await docker
        .getImage(ref)
        .remove({ force: true })
        .catch(() => undefined);
    }
  }
  const leftovers = async () => (await docker.listImages({ filters: { dangling: ['true'] } })).filter((image) => image.Created >= startedAt).map((image) => image.Id);
  // Not forced: an image that a container still uses stays, and is named below.
  for (const id of await leftovers()) await docker.getImage(id).remove().catch(() => undefined);
  const left = await leftovers();
  // Records in use by a build still running stay; `all`, or the daemon keeps most of them.
  await new Promise<void>((resolve, reject) =>
    docker.modem.dial({ path: '/build/prune?all=1', method: 'POST', statusCodes: { 200: true, 500: 'server error' } }, (err: Error | null) => (err ? reject(err) : resolve())),
  );
  if (left.length > 0) throw new Error(`The run left ${left.length} untagged image(s) in the test daemon that could not be removed: ${left.join(', ')}`);
}
