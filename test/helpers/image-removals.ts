/**
 * vitest global setup of the services tier: removes, once every file has finished, the images the
 * tests handed to `removeImagesAfterRun` (see test/helpers/docker.ts for why they wait).
 */
import { existsSync, readFileSync } from 'node:fs';

export default function setup(): () => Promise<void> {
  return async () => {
    const list = process.env.ASTRO_TEST_IMAGE_REMOVALS;
    if (!list || !existsSync(list)) return;
    const refs = [...new Set(readFileSync(list, 'utf8').split('\n').filter(Boolean))];
    const { removeImages } = await import('./docker.js');
    await removeImages(...refs);
  };
}
