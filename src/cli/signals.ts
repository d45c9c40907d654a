/**
 * What Ctrl-C (SIGINT) and SIGTERM do to a run: the first aborts the running SDK call through its
 * signal, and the run ends with 130 (143 for SIGTERM) once the SDK has stopped; a second one says
 * its last words (the summary of an interrupted run) and exits at once, with the first signal's
 * code, for a user who will not wait for the SDK to stop.
 */
import { ExitCode } from './exit-codes.js';

/** The signals a run reacts to. */
export type RunSignal = 'SIGINT' | 'SIGTERM';

/** What {@link interruptions} needs from the process. */
export interface InterruptionHooks {
  /** The run's last words, said before a second signal exits. */
  lastWords: () => void;
  /** Exit the process now. */
  exit: (code: number) => void;
}

/** The run's abort signal, the signal that interrupted it (if one did), and the handler to install. */
export interface Interruptions {
  /** Aborted by the first signal; its reason says which. */
  signal: AbortSignal;
  interruptedBy: () => RunSignal | undefined;
  /** Call on every SIGINT or SIGTERM. */
  onSignal: (signal: RunSignal) => void;
}

/** The interruption state of one run. */
export function interruptions(hooks: InterruptionHooks): Interruptions {
  const controller = new AbortController();
  let interruptedBy: RunSignal | undefined;
  return {
    signal: controller.signal,
    interruptedBy: () => interruptedBy,
    onSignal: (signal) => {
      if (interruptedBy) {
        hooks.lastWords();
        hooks.exit(interruptedBy === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED);
        return;
      }
      interruptedBy = signal;
      controller.abort(new Error(`Interrupted (${signal}).`));
    },
  };
}
