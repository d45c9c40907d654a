/** The CLI's line for the push method `auto` chose, and for the native push taking over from the daemon's. */
import { describe, expect, it } from 'vitest';
import { describeEvent } from '../../src/cli/output/format.js';

describe('image:push-method lines', () => {
  it('names the push chosen and why', () => {
    expect(describeEvent({ type: 'image:push-method', method: 'daemon', reason: '3 of 4 layers are in the registry as the daemon pushed them' })).toMatchObject({
      level: 'info',
      text: "push: by the daemon's own push (3 of 4 layers are in the registry as the daemon pushed them)",
    });
    expect(describeEvent({ type: 'image:push-method', method: 'native', reason: 'the registry holds every layer and the config' })).toMatchObject({
      level: 'info',
      text: 'push: by the native push (the registry holds every layer and the config)',
    });
  });

  it('a fallback is a retry line: what failed, and that the native push takes over', () => {
    expect(describeEvent({ type: 'image:push-method', method: 'native', reason: 'the daemon push failed: HTTP 408', fallbackFrom: 'daemon' })).toMatchObject({
      level: 'retry',
      text: 'push: the daemon push failed: HTTP 408; the native push takes over',
    });
  });
});
