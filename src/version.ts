/** The SDK version, sent in `User-Agent` and `X-Astro-Client-Version`. Kept equal to package.json by a test. */
export const SDK_VERSION = '0.1.0';
