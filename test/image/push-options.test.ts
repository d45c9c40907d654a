/** Push options out of range are refused by pushImage before it reads the image or reaches a registry. */
import { describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { pushImage, pushNative, type PushImageOptions } from '../../src/image/index.js';

// Neither the archive nor the registry exists: only the option check can answer.
const source = { archivePath: '/nonexistent/image.tar' };
const target = { repository: '127.0.0.1:9/team/app', tag: 'v1' };

describe('push options', () => {
  it.each<[string, PushImageOptions]>([
    ['concurrency 0', { concurrency: 0 }],
    ['chunkSizeBytes -1', { chunkSizeBytes: -1 }],
    ['minChunkSizeBytes 1.5', { minChunkSizeBytes: 1.5 }],
    ['gzipLevel 0', { gzipLevel: 0 }],
    ['gzipBlockBytes 1000', { gzipBlockBytes: 1000 }],
    ['stallTimeoutMs Infinity', { stallTimeoutMs: Number.POSITIVE_INFINITY }],
    ['retry.maxRetries -1', { retry: { maxRetries: -1 } }],
    ['concurrency 0 with method daemon', { method: 'daemon', concurrency: 0 }],
  ])('%s is ASTRO_CONFIG_INVALID_OPTION, naming the option', async (label, options) => {
    const err = await pushImage(source, target, options).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
    expect((err as Error).message).toContain(label.split(' ')[0]!.split('.')[0]!);
  });

  it('pushNative checks them too', async () => {
    const err = await pushNative(source, target, { concurrency: 0 }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
  });
});
