import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultProxy } from '../../src/testing/fault-proxy.js';
import type { UploadEvent } from '../../src/upload/index.js';

export const KIB = 1024;
export const MIB = 1024 * KIB;

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function payload(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    if ((i & 3) === 0) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
    }
    out[i] = (x >>> ((i & 3) * 8)) & 0xff;
  }
  return out;
}

/** Collects events and offers filters. */
export class EventLog {
  readonly events: UploadEvent[] = [];
  readonly onEvent = (e: UploadEvent) => {
    this.events.push(e);
  };
  of<T extends UploadEvent['type']>(type: T): Array<Extract<UploadEvent, { type: T }>> {
    return this.events.filter((e): e is Extract<UploadEvent, { type: T }> => e.type === type);
  }
}

/** Payload bytes the proxy saw for block and single-blob writes. */
export function payloadBytesUp(proxy: FaultProxy): number {
  const r = proxy.stats.byRoute;
  return (r['blob.putBlock']?.bytesUp ?? 0) + (r['blob.putBlob']?.bytesUp ?? 0);
}

/** A temporary folder removed by the returned cleanup. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Options that keep tests fast: small blocks, short backoff. */
export const FAST = {
  blockSizeBytes: 512 * KIB,
  minBlockSizeBytes: 64 * KIB,
  maxBlockSizeBytes: 1 * MIB,
  singleShotMaxBytes: 256 * KIB,
  retry: { initialDelayMs: 20, maxDelayMs: 200 },
} as const;

/** Compare bytes without vitest's deep equality (which is very slow on megabytes). */
export function sameBytes(actual: Uint8Array | undefined, expected: Uint8Array): boolean {
  return actual !== undefined && Buffer.compare(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength), Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)) === 0;
}
