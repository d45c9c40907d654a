/**
 * TimeSlice: the one way synchronous loops (the packer's reads, the scan's sizing, the
 * hidden-import guard) give the event loop a turn, and where they notice an abort.
 */
import { describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { TimeSlice } from '../../src/core/time-slice.js';
import { holdThread } from '../helpers/hold-thread.js';

describe('TimeSlice', () => {
  it('expires after its length of synchronous work, and a turn of the event loop starts a new slice', async () => {
    const slice = new TimeSlice(undefined, 20);
    expect(slice.expired).toBe(false);
    holdThread(25);
    expect(slice.expired).toBe(true);
    let ranBetween = false;
    setImmediate(() => (ranBetween = true));
    await slice.yield();
    expect(ranBetween).toBe(true); // the turn let an immediate queued before it run
    expect(slice.expired).toBe(false);
  });

  it('throws ASTRO_ABORTED from the turn during which the signal fired, with its reason as cause (redacted)', async () => {
    const controller = new AbortController();
    const slice = new TimeSlice(controller.signal, 1);
    await slice.yield(); // not aborted yet
    const reason = new Error('stop');
    setImmediate(() => controller.abort(reason)); // runs before the turn the next yield waits for
    const err = await slice.yield().catch((e: unknown) => e);
    expect(isAstroError(err) && err.code).toBe('ASTRO_ABORTED');
    expect((err as Error).cause).toMatchObject({ message: 'stop' }); // a redacted copy of the reason
  });
});
