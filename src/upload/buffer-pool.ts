/**
 * Reusable block buffers of one upload.
 *
 * Fresh memory is expensive to touch the first time: on the machines this was measured on, the
 * page faults of a new 64 MiB buffer cost ~240 ms, over twice the MD5 of the same bytes, while a
 * copy into memory already touched costs ~5 ms. Ranges read whole (the resume check of a staged
 * block) therefore go into a few buffers that are handed back and used again. A file's blocks,
 * and its single Put Blob up to 8 MiB, are read into 1 MiB pieces of a {@link PiecePool}
 * instead, once: the hashing worker reads and hashes them and the request body sends the same
 * pieces (source.ts); that pool is the process's, so a process that uploads many bundles touches
 * its pieces once.
 *
 * Blocks grow while an upload proves its link (2 MiB, then a little larger with every clean
 * block), so buffers are allocated in power-of-two size classes: a buffer of one class serves
 * every later block up to its size instead of each new size allocating (and faulting in) a buffer
 * of its own. What the pool keeps idle is capped in bytes, so memory stays bounded by the bytes
 * in flight plus that cap, whatever the payload size.
 *
 * The buffers are `SharedArrayBuffer`s so the hashing worker reads them in place (hash-pool.ts).
 */

/** A buffer lent out for one block; `release()` hands it back (idempotent). */
export interface BufferLease {
  readonly bytes: Buffer;
  release(): void;
}

const MIB = 1024 * 1024;
/** Smallest buffer allocated, in bytes (smaller blocks share a buffer of this size). */
const MIN_CLASS_BYTES = MIB;
/** Idle buffers kept for reuse, in bytes, by default: the driver's default bytes in flight. */
export const DEFAULT_MAX_IDLE_BYTES = 64 * MIB;

function allocate(length: number): ArrayBufferLike {
  return typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(length) : new ArrayBuffer(length);
}

/** The buffer size that holds `length` bytes: the next power of two, at least 1 MiB. */
export function sizeClassOf(length: number): number {
  if (length <= MIN_CLASS_BYTES) return MIN_CLASS_BYTES;
  return 2 ** Math.ceil(Math.log2(length));
}

/** A free-list of block buffers; not shared between uploads, so memory goes with the upload. */
export class BufferPool {
  private free: ArrayBufferLike[] = [];

  /** @param maxIdleBytes Free buffers kept beyond this many bytes are dropped (largest kept), in bytes. */
  constructor(private readonly maxIdleBytes = DEFAULT_MAX_IDLE_BYTES) {}

  /** A buffer of exactly `length` bytes (contents undefined), from the free list when one fits. */
  lease(length: number): BufferLease {
    // Smallest free buffer that fits, so big ones stay available for big blocks.
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const cap = this.free[i]!.byteLength;
      if (cap >= length && (best === -1 || cap < this.free[best]!.byteLength)) best = i;
    }
    const backing = best === -1 ? allocate(sizeClassOf(length)) : this.free.splice(best, 1)[0]!;
    let released = false;
    return {
      bytes: Buffer.from(backing, 0, length),
      release: () => {
        if (released) return;
        released = true;
        this.free.push(backing);
        // Keep the largest ones: blocks grow on a good link, and a big buffer serves a small block.
        this.free.sort((a, b) => b.byteLength - a.byteLength);
        let kept = 0;
        let n = 0;
        while (n < this.free.length && kept + this.free[n]!.byteLength <= Math.max(this.maxIdleBytes, this.free[0]!.byteLength)) kept += this.free[n++]!.byteLength;
        this.free.length = n;
      },
    };
  }
}

/** Size of one piece of a file block, in bytes: also what the request body hands the socket at a time. */
export const PIECE_BYTES = 1024 * 1024;
/** Idle pieces are dropped this long after the last one was handed back, in milliseconds. */
const PIECES_IDLE_END_MS = 5_000;

/** A block's bytes as pieces of {@link PIECE_BYTES} (the last one shorter). */
export interface PiecesLease {
  readonly pieces: Buffer[];
  /**
   * Hand the pieces back (idempotent). `reuse: false` drops them instead: after a failed request
   * the socket may still hold a piece it had not written.
   */
  release(reuse: boolean): void;
}

/**
 * 1 MiB shared pieces for file blocks, reused by every upload of the process. A block takes the
 * pieces it needs from the moment its bytes are read until its request is answered (the socket
 * has then written every byte), so what is lent is bounded by the driver's bytes in flight; what
 * is kept idle is capped, and dropped a few seconds after the last upload gave its pieces back.
 */
export class PiecePool {
  private free: ArrayBufferLike[] = [];
  private idleTimer: NodeJS.Timeout | undefined;

  /** @param maxIdleBytes Free pieces kept for reuse, at most, in bytes (default 64 MiB). */
  constructor(private readonly maxIdleBytes = DEFAULT_MAX_IDLE_BYTES) {}

  /** Pieces holding `length` bytes (contents undefined), reused when some are free. */
  lease(length: number): PiecesLease {
    const pieces: Buffer[] = [];
    for (let at = 0; at < length; at += PIECE_BYTES) {
      pieces.push(Buffer.from(this.free.pop() ?? allocate(PIECE_BYTES), 0, Math.min(PIECE_BYTES, length - at)));
    }
    let released = false;
    return {
      pieces,
      release: (reuse) => {
        if (released) return;
        released = true;
        if (reuse) for (const piece of pieces) if ((this.free.length + 1) * PIECE_BYTES <= this.maxIdleBytes) this.free.push(piece.buffer);
        this.dropWhenIdle();
      },
    };
  }

  /** Free pieces held now, in bytes. */
  get idleBytes(): number {
    return this.free.length * PIECE_BYTES;
  }

  private dropWhenIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => (this.free = []), PIECES_IDLE_END_MS);
    this.idleTimer.unref();
  }
}

/** The process-wide {@link PiecePool} of file blocks. */
export const filePieces = new PiecePool();
