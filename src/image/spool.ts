/**
 * Reading the daemon's image export (`GET /images/{name}/get`, a `docker save` tar stream) in one
 * pass without holding layers in memory: small members (JSON) are kept in memory; large
 * uncompressed ones (layers) are gzipped on the fly into temp files while both sides are hashed,
 * so each layer is ready to upload, and known by its uncompressed digest, the moment its last byte
 * has arrived. The caller is told at once and can upload that layer while the export is still
 * streaming the next one. Large members that are already compressed are stored as they are.
 *
 * Layers the registry already holds (see {@link SpoolSkip}) are drained from the stream unread:
 * not hashed, gzipped nor written. A layer must be recognised before its first byte arrives for
 * that: by its name in an OCI layout export (Docker 25+, `blobs/sha256/<diffID>`), by a
 * `manifest.json` that came before it, or, in a Docker < 25 export (`<v1 id>/layer.tar`, manifest
 * last), by its `<v1 id>/json` member, which comes just before and whose v1 ID is recomputed for
 * each of the image's chain IDs until one matches (a hash match proves which layer it is). A layer
 * not recognised in time is spooled as before.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OutputMeter } from '../bundle/gzip.js';
import { throwIfAborted } from '../core/abort.js';
import { ErrorCodes, ImageError } from '../core/errors.js';
import { abortAware } from '../core/scope.js';
import { bufferData, fileData, growingBlob, gzipToFile, type BlobData, type GzipSettings, type PreparedBlob, type TempSpace } from './blob.js';
import { sniffCompression, type ArchiveReader, type LayerCompression } from './layout.js';
import { walkTarStream } from './tar.js';

/** Members up to this size stay in memory. */
const IN_MEMORY_MAX = 1024 * 1024;

type Member =
  | { kind: 'buffer'; data: Buffer; compression: LayerCompression }
  | { kind: 'file'; path: string; size: number; digest: string; compression: LayerCompression }
  | { kind: 'gzipped'; digest: string; size: number; compression: 'none'; gzipped: PreparedBlob }
  | { kind: 'skipped'; diffId: string; size: number; compression: 'none' };

/** An uncompressed layer whose gzip has just started: `blob` grows on disk (see `BlobGrowth`). */
export interface GrowingMember {
  name: string;
  diffId: string;
  blob: PreparedBlob;
  /** Settles when the gzip is done (digest and size set) or failed (with its error). */
  done: Promise<void>;
}

/** Layers of the exported image: how to recognise them, and those the caller does not need the bytes of (the registry holds them). */
export interface SpoolSkip {
  /** The image's diff IDs, in layer order (as the daemon describes the image). */
  diffIds: readonly string[];
  /**
   * Digest of the image config (`sha256:…`), to pick the image's entry in a `manifest.json`; when
   * unknown (the containerd image store names images otherwise), the file's only entry is taken.
   */
  configDigest: string | undefined;
  /** Diff IDs whose bytes are drained unread when the layer is recognised before it arrives. */
  held: ReadonlySet<string>;
}

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
  /** Member name → diff ID, for layers recognised before their bytes (see the module comment). */
  private readonly known = new Map<string, string>();
  /** Bytes drained unread (layers the registry holds). */
  skippedBytes = 0;

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
    if (m.kind === 'skipped') throw new Error(`member ${name} was drained unread`);
    return m.kind === 'buffer' ? bufferData(m.data) : fileData(m.path, 0, m.size);
  }

  /** The gzipped form of an uncompressed large member, when it was made during the spool. */
  gzipped(name: string): PreparedBlob | undefined {
    const m = this.resolve(name);
    return m?.kind === 'gzipped' ? m.gzipped : undefined;
  }

  /** The diff ID of a layer member drained unread (its bytes were never read), else undefined. */
  skipped(name: string): string | undefined {
    const m = this.resolve(name);
    return m?.kind === 'skipped' ? m.diffId : undefined;
  }

  /**
   * Consume an export stream. `onMember` is called (and not awaited) for every large member as
   * soon as it is complete; a layer of `skip.held` recognised in time is drained unread instead
   * (not reported; see {@link skipped}). Another layer recognised before its bytes is also
   * reported to `onLayerStart` when its gzip starts, as a blob that grows on disk (its digest and
   * size are set when it is done; its diff ID is checked at the end, and a mismatch fails the blob
   * and the spool), so it can be uploaded while it arrives.
   *
   * @throws AstroAbortError when `signal` fires (whatever the abort made the stream or a step throw).
   */
  async spool(
    source: AsyncIterable<Buffer | Uint8Array | string>,
    temp: TempSpace,
    gzip: GzipSettings,
    onMember: (m: SpooledMember) => void,
    signal?: AbortSignal,
    skip?: SpoolSkip,
    onLayerStart?: (m: GrowingMember) => void,
  ): Promise<void> {
    try {
      await this.walk(source, temp, gzip, onMember, signal, skip, onLayerStart);
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
    skip: SpoolSkip | undefined,
    onLayerStart: ((m: GrowingMember) => void) | undefined,
  ): Promise<void> {
    throwIfAborted(signal);
    const chainIds = skip ? chainIdsOf(skip.diffIds) : [];
    await walkTarStream(source, async (entry, body) => {
      throwIfAborted(signal);
      if ((entry.type === 'symlink' || entry.type === 'hardlink') && entry.linkName) {
        this.links.set(entry.name, { type: entry.type, target: entry.linkName });
        return;
      }
      if (entry.type !== 'file') return;
      if (skip) {
        const diffId = this.recognise(entry.name, skip);
        if (diffId !== undefined && skip.held.has(diffId)) {
          // Returning without reading the body makes the tar walk skip its bytes.
          this.members.set(entry.name, { kind: 'skipped', diffId, size: entry.size, compression: 'none' });
          this.skippedBytes += entry.size;
          return;
        }
      }
      if (entry.size <= IN_MEMORY_MAX) {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c);
        const data = Buffer.concat(chunks);
        this.members.set(entry.name, { kind: 'buffer', data, compression: sniffCompression(data.subarray(0, 4)) });
        if (skip) this.learn(entry.name, data, skip, chainIds);
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
        const path = temp.file(`${entry.name}.gz`);
        // A layer known before its bytes can be uploaded while it is gzipped (see onLayerStart).
        const expected = skip && onLayerStart ? this.recognise(entry.name, skip) : undefined;
        const growing = expected !== undefined ? growingBlob(path, expected) : undefined;
        let settle: { resolve: () => void; reject: (e: unknown) => void } | undefined;
        if (growing) {
          const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
          done.catch(() => undefined); // the spool's own failure is reported by the spool
          onLayerStart!({ name: entry.name, diffId: expected!, blob: growing, done });
        }
        let out: Awaited<ReturnType<typeof gzipToFile>>;
        try {
          out = await gzipToFile(rest(), path, gzip, signal, growing?.growth);
          if (expected !== undefined && out.diffId !== expected) {
            throw new ImageError(
              ErrorCodes.IMAGE_INVALID_ARCHIVE,
              `Layer ${entry.name} of the export does not match its diff ID (expected ${expected}, read ${out.diffId}); try again.`,
            );
          }
        } catch (err) {
          growing?.growth?.fail(err);
          settle?.reject(err);
          throw err;
        }
        if (growing) {
          growing.digest = out.digest;
          growing.size = out.size;
          growing.growth!.finish();
          settle!.resolve();
        }
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

  /** The diff ID of the layer member `name`, when known before its bytes. */
  private recognise(name: string, skip: SpoolSkip): string | undefined {
    const clean = name.replace(/^\.\//, '');
    const oci = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(clean);
    // A blob named after a diff ID holds exactly those uncompressed bytes.
    if (oci && skip.diffIds.includes(`sha256:${oci[1]}`)) return `sha256:${oci[1]}`;
    return this.known.get(clean);
  }

  /** Learn layer member names from a small member that came first (`manifest.json`, a legacy `<v1 id>/json`). */
  private learn(name: string, data: Buffer, skip: SpoolSkip, chainIds: string[]): void {
    const clean = name.replace(/^\.\//, '');
    if (clean === 'manifest.json') {
      for (const [member, diffId] of layersOfManifest(data, skip)) this.known.set(member, diffId);
      return;
    }
    const legacy = /^([0-9a-f]{64})\/json$/.exec(clean);
    if (!legacy) return;
    const index = v1LayerIndex(legacy[1]!, data.toString('utf8'), chainIds);
    if (index !== undefined) this.known.set(`${legacy[1]}/layer.tar`, skip.diffIds[index]!);
  }
}

/** Chain IDs of a layer stack: the first diff ID, then sha256 of "<chain of the one below> <diff ID>". */
function chainIdsOf(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, d] of diffIds.entries()) {
    out.push(i === 0 ? d : `sha256:${createHash('sha256').update(`${out[i - 1]} ${d}`).digest('hex')}`);
  }
  return out;
}

/** Layer members of the image's entry in a legacy `manifest.json`, paired with the image's diff IDs. */
function layersOfManifest(data: Buffer, skip: SpoolSkip): Array<[string, string]> {
  let entries: unknown;
  try {
    entries = JSON.parse(data.toString('utf8'));
  } catch {
    return [];
  }
  if (!Array.isArray(entries)) return [];
  const listed = entries as Array<{ Config?: unknown; Layers?: unknown }>;
  const hex = skip.configDigest?.replace(/^sha256:/, '');
  const entry = hex ? listed.find((e) => typeof e?.Config === 'string' && e.Config.includes(hex)) : listed.length === 1 ? listed[0] : undefined;
  const layers = entry?.Layers;
  if (!Array.isArray(layers) || layers.length !== skip.diffIds.length || !layers.every((l) => typeof l === 'string')) return [];
  return (layers as string[]).map((l, i) => [l.replace(/^\.\//, ''), skip.diffIds[i]!]);
}

/**
 * Which layer a Docker < 25 export's `<v1 id>/json` describes. The daemon names that folder
 * `sha256(JSON of the member with "id" dropped, "layer_id" = the layer's chain ID and "parent" =
 * the parent's v1 ID as a digest, keys sorted)`; the member's "os" was not in the hashed JSON for
 * all but the top layer, so both forms are tried. The raw text of each value is kept (the daemon
 * hashed its own compact encoding). Undefined when nothing matches (then the layer is spooled).
 */
function v1LayerIndex(v1Id: string, json: string, chainIds: string[]): number | undefined {
  const members = topLevelMembers(json);
  if (!members) return undefined;
  const base = new Map(members);
  base.delete('id');
  const parent = base.get('parent');
  if (parent !== undefined) {
    let p: unknown;
    try {
      p = JSON.parse(parent);
    } catch {
      return undefined;
    }
    if (typeof p !== 'string') return undefined;
    base.set('parent', JSON.stringify(`sha256:${p}`));
  }
  const variants = base.has('os') ? [base, new Map([...base].filter(([k]) => k !== 'os'))] : [base];
  for (const variant of variants) {
    for (const [i, chainId] of chainIds.entries()) {
      variant.set('layer_id', JSON.stringify(chainId));
      const keys = [...variant.keys()].sort();
      const text = `{${keys.map((k) => `${JSON.stringify(k)}:${variant.get(k)}`).join(',')}}`;
      if (createHash('sha256').update(text).digest('hex') === v1Id) return i;
    }
  }
  return undefined;
}

/** The top-level members of a compact JSON object as [key, raw value text], or undefined when it is not one. */
function topLevelMembers(text: string): Array<[string, string]> | undefined {
  const out: Array<[string, string]> = [];
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  const str = (): string | undefined => {
    if (text[i] !== '"') return undefined;
    const start = i++;
    while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= n) return undefined;
    i++;
    return text.slice(start, i);
  };
  const value = (): string | undefined => {
    const start = i;
    let depth = 0;
    while (i < n) {
      const c = text[i]!;
      if (c === '"') {
        if (str() === undefined) return undefined;
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (depth === 0) break;
        depth--;
      } else if (c === ',' && depth === 0) break;
      i++;
    }
    return depth === 0 && i > start ? text.slice(start, i).trim() : undefined;
  };
  ws();
  if (text[i] !== '{') return undefined;
  i++;
  for (;;) {
    ws();
    if (text[i] === '}') return out;
    const rawKey = str();
    if (rawKey === undefined) return undefined;
    ws();
    if (text[i] !== ':') return undefined;
    i++;
    ws();
    const v = value();
    if (v === undefined) return undefined;
    out.push([JSON.parse(rawKey) as string, v]);
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') return undefined;
  }
}
