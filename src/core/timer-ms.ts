/**
 * The one check of a time limit given in milliseconds. Such limits end up in a Node timer, which
 * takes a delay that is not a number from 1 to 2^31-1 as 1 ms (with only a TimeoutOverflowWarning):
 * a limit of `Infinity`, a month, 0 or a negative number would time every request out at once.
 * Each module words its own error around {@link TIMER_MS_RULE}.
 */

/** The longest delay a Node timer keeps: 2^31-1 ms, about 24.8 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a valid limit is, for error messages: "must be …". */
export const TIMER_MS_RULE = `a number of milliseconds more than 0 and at most ${MAX_TIMER_MS} (about 24.8 days)`;

/** Whether `value` is a time limit a timer keeps: a number more than 0 and at most {@link MAX_TIMER_MS}. */
export function isTimerMs(value: unknown): value is number {
  return typeof value === 'number' && value > 0 && value <= MAX_TIMER_MS;
}
