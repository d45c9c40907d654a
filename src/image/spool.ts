/**
 * Reading the daemon's image export (`GET /images/{name}/get`, a `docker save` tar stream) in one
 * pass without holding layers in memory: small members (JSON) are kept in memory; large
 * uncompressed ones (layers) are gzipped on the fly into temp files while both sides are hashed,
 * so each layer is ready to upload, and known by its uncompressed digest, the moment its last byte
 * has arrived. The caller is told at once and can upload that layer while the export is still
 * streaming the next one. Large members that are already compressed are stored as they are.
 */
import { createWriteStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OutputMeter } from '../bundle/gzip.js';
import { throwIfAborted } from '../core/abort.js';
import { abortAware } from '../core/scope.js';
import { bufferData, fileData, gzipToFile, type BlobData, type GzipSettings, type PreparedBlob, type TempSpace } from './blob.js';
import { sniffCompression, type ArchiveReader, type LayerCompression } from './layout.js';
import { walkTarStream } from './tar.js';

/** Members up to this size stay in memory. */
const IN_MEMORY_MAX = 1024 * 1024;

type Member =
  | { kind: 'buffer'; data: Buffer; compression: LayerCompression }
  | { kind: 'file'; path: string; size: number; digest: string; compression: LayerCompression }
  | { kind: 'gzipped'; digest: string; size: number; compression: 'none'; gzipped: PreparedBlob };

/** A spooled member, as reported to the caller when it is complete. */
export interface SpooledMember {
  name: string;
  /** sha256 of the member's bytes as exported (for an uncompressed layer: its diff ID). */
  digest: string;
  size: number;
  compression: LayerCompression;
  /** For an uncompressed member: its gzipped form, ready to upload. */
  gzipped?: PreparedBlob;
}

/** An export spooled to memory and temp files, readable like an archive. */
export class SpooledArchive implements ArchiveReader {
  private readonly members = new Map<string, Member>();
  private readonly links = new Map<string, { type: 'symlink' | 'hardlink'; target: string }>();

  private resolve(name: string): Member | undefined {
    let current = name.replace(/^\.\//, '');
    for (let hops = 0; hops < 10; hops++) {
      const m = this.members.get(current);
      if (m) return m;
      const link = this.links.get(current);
      if (!link) return undefined;
      current =
        link.type === 'symlink'
          ? posix.normalize(posix.join(posix.dirname(current), link.target))
          : posix.normalize(link.target.replace(/^\.\//, ''));
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  async readSmall(name: string): Promise<Buffer> {
    const m = this.resolve(name);
    if (!m) throw new Error(`member ${name} is missing`);
    if (m.kind !== 'buffer') throw new Error(`member ${name} is too large to be metadata`);
    return m.data;
  }

  async sniff(name: string): Promise<LayerCompression> {
    return this.resolve(name)?.compression ?? 'none';
  }

  /** Bytes of a member as exported (not available for members gzipped on the fly). */
  data(name: string): BlobData {
    const m = this.resolve(name);
    if (!m) throw new Error(`member ${name} is missing`);
    if (m.kind === 'gzipped') throw new Error(`member ${name} was only kept gzipped`);
    return m.kind === 'buffer' ? bufferData(m.data) : fileData(m.path, 0, m.size);
  }

  /** The gzipped form of an uncompressed large member, when it was made during the spool. */
  gzipped(name: string): PreparedBlob | undefined {
    const m = this.resolve(name);
    return m?.kind === 'gzipped' ? m.gzipped : undefined;
  }

  /**
   * Consume an export stream. `onMember` is called (and not awaited) for every large member as
   * soon as it is complete.
   *
   * @throws AstroAbortError when `signal` fires (whatever the abort made the stream or a step throw).
   */
  async spool(
    source: AsyncIterable<Buffer | Uint8Array | string>,
    temp: TempSpace,
    gzip: GzipSettings,
    onMember: (m: SpooledMember) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      await this.walk(source, temp, gzip, onMember, signal);
    } catch (err) {
      throw abortAware(err, signal);
    }
  }

  private async walk(
    source: AsyncIterable<Buffer | Uint8Array | string>,
    temp: TempSpace,
    gzip: GzipSettings,
    onMember: (m: SpooledMember) => void,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    throwIfAborted(signal);
    await walkTarStream(source, async (entry, body) => {
      throwIfAborted(signal);
      if ((entry.type === 'symlink' || entry.type === 'hardlink') && entry.linkName) {
        this.links.set(entry.name, { type: entry.type, target: entry.linkName });
        return;
      }
      if (entry.type !== 'file') return;
      if (entry.size <= IN_MEMORY_MAX) {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c);
        const data = Buffer.concat(chunks);
        this.members.set(entry.name, { kind: 'buffer', data, compression: sniffCompression(data.subarray(0, 4)) });
        return;
      }
      // Look at the first bytes to tell a compressed blob from an uncompressed layer.
      const iterator = body[Symbol.asyncIterator]();
      const first = await iterator.next();
      const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
      const rest = async function* () {
        if (!first.done) yield head;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
      };
      const compression = sniffCompression(head.subarray(0, 4));
      if (compression === 'none') {
        const out = await gzipToFile(rest(), temp.file(`${entry.name}.gz`), gzip, signal);
        const gzipped: PreparedBlob = { digest: out.digest, size: out.size, data: fileData(out.path, 0, out.size), diffId: out.diffId, compressed: true };
        this.members.set(entry.name, { kind: 'gzipped', digest: out.diffId, size: out.rawSize, compression: 'none', gzipped });
        onMember({ name: entry.name, digest: out.diffId, size: out.rawSize, compression, gzipped });
        return;
      }
      const path = temp.file(entry.name);
      const hash = new OutputMeter();
      await pipeline(Readable.from(rest()), hash, createWriteStream(path), signal ? { signal } : {});
      const member: Member = { kind: 'file', path, size: hash.bytes, digest: hash.ociDigest(), compression };
      this.members.set(entry.name, member);
      onMember({ name: entry.name, digest: member.digest, size: member.size, compression });
    });
  }
}
