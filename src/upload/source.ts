/**
 * The bytes being uploaded: a file read range by range (never loaded whole) or an in-memory
 * buffer. A file is checked for changes before the commit so a bundle rewritten mid-upload is
 * never committed as a mix of old and new bytes.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { ErrorCodes, UploadError, isAstroError } from '../core/errors.js';
import type { BlobBody } from './blob-http.js';
import { filePieces, PIECE_BYTES, type BufferLease, type BufferPool } from './buffer-pool.js';
import { digestInSlices, fillFromFileHere, fillFromFileOffThread, hashOffThread, SHORT_READ, type HashAlgorithm } from './hash-pool.js';

/**
 * One block ready to send: its digest and its bytes as a request body. A file block's bytes were
 * read once, into 1 MiB pieces lent by the process's piece pool, by the worker that hashed them,
 * and the body sends those pieces; a byte array's block is a view of the caller's bytes. Every
 * try of a block reads it again.
 */
export interface SourceBlock {
  /** The `algorithm` digest of the block's bytes. */
  readonly digest: Buffer;
  readonly body: BlobBody;
  /**
   * The block's request is over: its memory may be reused when `reusable` (the service answered,
   * so the socket wrote every byte), else it is dropped. Idempotent.
   */
  release(reusable: boolean): void;
}

/** Random access to the upload's bytes. */
export interface UploadSource {
  /** Total size, in bytes. */
  readonly size: number;
  /** The block `[offset, offset + length)`, hashed with `algorithm` off the main thread. */
  block(offset: number, length: number, algorithm: HashAlgorithm): Promise<SourceBlock>;
  /**
   * The whole payload and its `algorithm` digest, for one request that cannot start before the
   * digest is known (a single Put Blob); the calling thread would only wait for a worker. A byte
   * array is hashed where it is, on the calling thread, in slices that give the event loop a turn
   * every few milliseconds (`digestInSlices`): a worker would need it copied into shared memory
   * first, which costs more than the hash, and in a new process its start competes with the
   * request for the CPU. A file up to {@link INLINE_WHOLE_MAX_BYTES} is read into the process's
   * pieces and hashed on the calling thread; a larger one is hashed by a worker reading it through
   * one reused piece, and its body reads the file again on each try ({@link wholeIsStreamed}).
   */
  whole(algorithm: HashAlgorithm): Promise<SourceBlock>;
  /**
   * {@link whole}'s body is read from the source while the request runs, not held in memory: only
   * a `Content-MD5` then stops bytes rewritten mid-request from being stored.
   */
  readonly wholeIsStreamed: boolean;
  /** The bytes of `[offset, offset + length)` whole, in a buffer lent by `pool` (release it when done). */
  read(offset: number, length: number, pool: BufferPool): Promise<BufferLease>;
  /** Throw `ASTRO_UPLOAD_SOURCE_CHANGED` if the source changed since it was opened. */
  assertUnchanged(): Promise<void>;
  close(): Promise<void>;
}

/** Largest file {@link UploadSource.whole} reads and hashes on the calling thread, in bytes (~11 ms of MD5). */
export const INLINE_WHOLE_MAX_BYTES = 8 * 1024 * 1024;

/** Base64 MD5 of some bytes (the `Content-MD5` header form). */
export function md5(bytes: Uint8Array): Buffer {
  return createHash('md5').update(bytes).digest();
}

class BytesSource implements UploadSource {
  readonly size: number;
  readonly wholeIsStreamed = false;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<BufferLease> {
    // The caller's memory as it is: no copy to send it (the hashing worker gets it piece by piece).
    const view = this.bytes.subarray(offset, offset + length);
    return { bytes: Buffer.from(view.buffer, view.byteOffset, view.byteLength), release: () => {} };
  }
  async block(offset: number, length: number, algorithm: HashAlgorithm): Promise<SourceBlock> {
    const { bytes } = await this.read(offset, length);
    return { digest: await hashOffThread(bytes, algorithm), body: bytes, release: () => {} };
  }
  async whole(algorithm: HashAlgorithm): Promise<SourceBlock> {
    const { bytes } = await this.read(0, this.size);
    return { digest: await digestInSlices(bytes, algorithm), body: bytes, release: () => {} };
  }
  async assertUnchanged(): Promise<void> {}
  async close(): Promise<void> {}
}

class FileSource implements UploadSource {
  constructor(
    private readonly path: string,
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly mtimeMs: number,
  ) {}

  async read(offset: number, length: number, pool: BufferPool): Promise<BufferLease> {
    const lease = pool.lease(length);
    try {
      await this.fill(lease.bytes.subarray(0, length), offset);
      return lease;
    } catch (error) {
      lease.release();
      throw error;
    }
  }

  block(offset: number, length: number, algorithm: HashAlgorithm): Promise<SourceBlock> {
    return this.piecesOf(offset, length, (pieces) => fillFromFileOffThread(this.handle.fd, offset, pieces, algorithm));
  }

  get wholeIsStreamed(): boolean {
    return this.size > INLINE_WHOLE_MAX_BYTES;
  }

  whole(algorithm: HashAlgorithm): Promise<SourceBlock> {
    if (this.wholeIsStreamed) return this.streamed(algorithm);
    // Not even a worker started: its start-up would compete for the cores with this one request.
    return this.piecesOf(0, this.size, async (pieces) => fillFromFileHere(this.handle.fd, 0, pieces, algorithm));
  }

  /**
   * The whole file as a body read from disk during each try, after one pass that only hashes it:
   * memory stays at a few chunks whatever the file's size, where reading it into pieces first
   * held all of it (and fresh memory costs more to touch than the MD5). The hashing pass reads
   * the file through a single reused piece, on a worker.
   */
  private async streamed(algorithm: HashAlgorithm): Promise<SourceBlock> {
    const lease = filePieces.lease(PIECE_BYTES);
    const piece = lease.pieces[0]!;
    const tail = this.size % PIECE_BYTES;
    // The worker reads each piece, hashes it and goes on: one piece serves every step.
    const steps: Uint8Array[] = new Array<Uint8Array>(Math.floor(this.size / PIECE_BYTES)).fill(piece);
    if (tail > 0) steps.push(piece.subarray(0, tail));
    let digest: Buffer;
    try {
      digest = await fillFromFileOffThread(this.handle.fd, 0, steps, algorithm);
    } catch (error) {
      throw this.readFailed(error, 0);
    } finally {
      // The worker has answered, so it no longer reads into the piece.
      lease.release(true);
    }
    const chunks = (): AsyncGenerator<Uint8Array> => this.chunksOf(0, this.size);
    return { digest, body: { byteLength: this.size, chunks }, release: () => {} };
  }

  /**
   * `[position, position + length)` read in {@link PIECE_BYTES} chunks, each into memory of its
   * own: the socket may still hold a chunk when the next is read, so none is reused.
   */
  private async *chunksOf(position: number, length: number): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < length; ) {
      const chunk = Buffer.allocUnsafeSlow(Math.min(PIECE_BYTES, length - at));
      await this.fill(chunk, position + at);
      at += chunk.length;
      yield chunk;
    }
  }

  /** `length` bytes from `position` read into the process's pieces by `read`, which answers their digest. */
  private async piecesOf(position: number, length: number, read: (pieces: Uint8Array[]) => Promise<Buffer>): Promise<SourceBlock> {
    const lease = filePieces.lease(length);
    let digest: Buffer;
    try {
      digest = await read(lease.pieces);
    } catch (error) {
      lease.release(true);
      throw this.readFailed(error, position);
    }
    const pieces = lease.pieces;
    return {
      digest,
      body: {
        byteLength: length,
        async *chunks() {
          yield* pieces;
        },
      },
      release: (reusable) => lease.release(reusable),
    };
  }

  /** Fill `target` with the file's bytes from `position`; a file that ends first has changed. */
  private async fill(target: Uint8Array, position: number): Promise<void> {
    for (let filled = 0; filled < target.length; ) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(target, filled, target.length - filled, position + filled));
      } catch (error) {
        throw this.readFailed(error, position + filled);
      }
      if (bytesRead === 0) throw this.changed('it became shorter while being uploaded');
      filled += bytesRead;
    }
  }

  async assertUnchanged(): Promise<void> {
    const st = await this.handle.stat();
    if (st.size !== this.size || st.mtimeMs !== this.mtimeMs) throw this.changed('it was modified while being uploaded');
  }

  /**
   * The error for a read from `position` that failed: the file ended early (it changed), or the
   * disk or the descriptor failed (EIO, EBADF), which no retry of a request can help.
   */
  private readFailed(error: unknown, position: number): unknown {
    if (isAstroError(error)) return error;
    const message = (error as Error | undefined)?.message ?? String(error);
    if (message === SHORT_READ) return this.changed('it became shorter while being uploaded');
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    const said = code && !message.includes(code) ? `${code} ${message}` : message;
    return new UploadError(
      ErrorCodes.UPLOAD_SOURCE_UNREADABLE,
      `Reading the upload source ${this.path} from byte ${position} failed: ${said}. Nothing was committed; check the file and its disk, then upload again.`,
      {},
      { cause: error },
    );
  }

  private changed(what: string): UploadError {
    return new UploadError(
      ErrorCodes.UPLOAD_SOURCE_CHANGED,
      `The upload source ${this.path} changed: ${what}. Nothing was committed; upload it again once it is stable.`,
    );
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Open a file path or wrap a byte array as an {@link UploadSource}. */
export async function openSource(source: string | Uint8Array): Promise<UploadSource> {
  if (typeof source !== 'string') return new BytesSource(source);
  let handle: FileHandle;
  try {
    handle = await open(source, 'r');
  } catch (error) {
    throw new UploadError(
      ErrorCodes.UPLOAD_SOURCE_UNREADABLE,
      `Cannot open the upload source ${source}: ${(error as Error).message}. Check the path and its permissions.`,
      {},
      { cause: error },
    );
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    return new FileSource(source, handle, st.size, st.mtimeMs);
  } catch (error) {
    await handle.close().catch(() => {});
    throw new UploadError(
      ErrorCodes.UPLOAD_SOURCE_UNREADABLE,
      `Cannot read the upload source ${source}: ${(error as Error).message}.`,
      {},
      { cause: error },
    );
  }
}
