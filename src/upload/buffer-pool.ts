/**
 * Reusable block buffers of one upload.
 *
 * Fresh memory is expensive to touch the first time: on the machines this was measured on, the
 * page faults of a new 64 MiB buffer cost ~240 ms, over twice the MD5 of the same bytes, while a
 * copy into memory already touched costs ~5 ms. Blocks are therefore read (or copied) into a few
 * buffers that are handed back when their request ends and used again for later blocks.
 *
 * The buffers are `SharedArrayBuffer`s so the hashing worker reads them in place (hash-pool.ts).
 */

/** A buffer lent out for one block; `release()` hands it back (idempotent). */
export interface BufferLease {
  readonly bytes: Buffer;
  release(): void;
}

/** Free buffers kept for reuse beyond this many are dropped: one per block in flight at most (the default concurrency cap). */
const MAX_IDLE_BUFFERS = 8;

function allocate(length: number): ArrayBufferLike {
  return typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(length) : new ArrayBuffer(length);
}

/** A free-list of block buffers; not shared between uploads, so memory goes with the upload. */
export class BufferPool {
  private free: ArrayBufferLike[] = [];

  /** A buffer of exactly `length` bytes (contents undefined), from the free list when one fits. */
  lease(length: number): BufferLease {
    // Smallest free buffer that fits, so big ones stay available for big blocks.
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const cap = this.free[i]!.byteLength;
      if (cap >= length && (best === -1 || cap < this.free[best]!.byteLength)) best = i;
    }
    const backing = best === -1 ? allocate(length) : this.free.splice(best, 1)[0]!;
    let released = false;
    return {
      bytes: Buffer.from(backing, 0, length),
      release: () => {
        if (released) return;
        released = true;
        this.free.push(backing);
        // Keep the largest ones: blocks grow on a good link, and a big buffer serves a small block.
        if (this.free.length > MAX_IDLE_BUFFERS) {
          this.free.sort((a, b) => b.byteLength - a.byteLength);
          this.free.length = MAX_IDLE_BUFFERS;
        }
      },
    };
  }
}
