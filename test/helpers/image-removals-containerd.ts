/** vitest global setup of the `containerd-store` project: test/helpers/image-removals.ts, on that project's daemon. */
import { imageRemovals } from './image-removals.js';

export default imageRemovals('containerd', process.env.ASTRO_TEST_IMAGE_REMOVALS_CONTAINERD);
