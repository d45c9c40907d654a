/**
 * The CLI's stdout and stderr when their reader may go away: `astro-deploy dags --json | grep -m1
 * '"deploy:created"'`, `astro-deploy demo | head -1`. Node ignores SIGPIPE, so once the reader has
 * exited every write fails with EPIPE, as an `error` event on the stream; unhandled, that event
 * crashed the CLI with a stack trace and left a created deploy unfinalized. A gate takes the first
 * write error as the end of that output: it writes nothing more to the stream, tells its listeners
 * once, and the run goes on (README, Command line, Output: the deploy runs to its end).
 */
import type { Writable } from 'node:stream';

/** What the CLI writes its text to: a stream, or a gate in front of one. */
export interface TextOutput {
  write(text: string, callback?: (error?: Error | null) => void): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
  readonly rows?: number;
}

/** A stream that may be closed by its reader, behind a gate. */
export interface OutputGate extends TextOutput {
  /** The write error that closed the output (EPIPE: its reader went away), once one did. */
  readonly closedBy: Error | undefined;
  /** Call `listener` once, when the output closes (at once if it has). */
  onClose(listener: (error: Error) => void): void;
}

/** `stream` behind a gate: after its first write error, writes are dropped (their callbacks still run). */
export function gateOutput(stream: Writable & { isTTY?: boolean; columns?: number; rows?: number }): OutputGate {
  let closedBy: Error | undefined;
  const listeners: Array<(error: Error) => void> = [];
  // Kept for good: writes made before the close may still fail, and each failure is an event.
  stream.on('error', (error: Error) => {
    if (closedBy) return;
    closedBy = error;
    for (const listener of listeners.splice(0)) listener(error);
  });
  return {
    get isTTY() {
      return stream.isTTY;
    },
    get columns() {
      return stream.columns;
    },
    get rows() {
      return stream.rows;
    },
    get closedBy() {
      return closedBy;
    },
    write(text, callback) {
      if (!closedBy) return stream.write(text, callback);
      if (callback) queueMicrotask(() => callback());
      return true;
    },
    onClose(listener) {
      if (closedBy) listener(closedBy);
      else listeners.push(listener);
    },
  };
}

/** The code of a write error, for people: `EPIPE`, `EIO`, or its message. */
export function writeErrorCode(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.message;
}
