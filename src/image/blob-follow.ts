/**
 * Following a blob that is still being written (a layer uploaded while it is gzipped): how far the
 * chunk loop may read, and, once the blob is complete and its digest known, whether the registry
 * holds it already, so the rest need not be sent. A blob that is not growing reads as complete.
 */
import type { Emit } from '../core/emitter.js';
import type { RetryPolicy } from '../core/retry.js';
import type { PreparedBlob } from './blob.js';
import { blobExists, mountBlob } from './blob-probe.js';
import type { RegistryClient } from './registry-client.js';
import type { ImageEvent } from './types.js';

/** How a growing blob turned out to be in the registry already. */
export interface FoundElsewhere {
  status: 'skipped' | 'mounted';
  from?: string;
}

/** The reader's side of a {@link PreparedBlob} with `growth` (see the module comment). */
export class GrowingFollower {
  /** The complete blob was looked for in the registry (once). */
  private looked = false;
  /** Set when the blob turned out to be in the registry already (its upload session was dropped). */
  found: FoundElsewhere | undefined;

  constructor(
    private readonly client: RegistryClient,
    private readonly blob: PreparedBlob,
    private readonly policy: RetryPolicy,
    private readonly mountFrom: readonly string[],
    private readonly signal: AbortSignal | undefined,
    private readonly emit: Emit<ImageEvent>,
  ) {}

  /** True once digest and size are final (always for a blob that is not growing). */
  get complete(): boolean {
    return !this.blob.growth || this.blob.growth.done;
  }

  /** True when the writer failed: its error is the push's, nothing to retry. */
  get writerFailed(): boolean {
    return this.blob.growth?.failed ?? false;
  }

  /** Bytes of the blob that can be read now: all of it, or what a growing blob has written. */
  readable(): number {
    const g = this.blob.growth;
    return g && !g.done ? g.written : this.blob.size;
  }

  /**
   * Where the next chunk may end: once `want` bytes are written (or the blob is complete), the
   * readable end. Rejects with the writer's error when the gzip failed.
   */
  async available(want: number): Promise<number> {
    await this.blob.growth?.until(want);
    return this.readable();
  }

  /**
   * Called before each chunk: the first time a growing blob is complete with bytes still to send
   * (`more`), `HEAD` its digest and try the mounts; when either settles it, cancel the upload
   * session at `location` and return true. What was sent is the price of having started early,
   * small on a slow link, where the gzip runs ahead of the upload.
   */
  async foundOnceComplete(more: boolean, location: string | undefined): Promise<boolean> {
    if (!this.blob.growth?.done || this.looked) return false;
    this.looked = true;
    if (!more) return false;
    const { client, blob, signal } = this;
    let found: FoundElsewhere | undefined;
    if ((await blobExists(client, blob.digest, { policy: this.policy, signal })) !== undefined) found = { status: 'skipped' };
    else {
      const mount = await mountBlob(client, blob.digest, this.mountFrom, { keepSession: false, signal });
      if (mount.from) found = { status: 'mounted', from: mount.from };
    }
    if (!found) return false;
    this.found = found;
    const sig = signal ? { signal } : {};
    if (location) await client.send({ method: 'DELETE', url: location, ...sig }, [200, 202, 204, 404]).catch(() => undefined);
    if (found.status === 'skipped') this.emit({ type: 'image:layer-skipped', digest: blob.digest, size: blob.size });
    else this.emit({ type: 'image:layer-mounted', digest: blob.digest, size: blob.size, from: found.from! });
    return true;
  }
}
