/**
 * Deterministic tar stream for a list of scanned entries.
 *
 * Header encoding is node-tar's (`Header`, and `Pax` for names or link targets that do not fit a
 * USTAR header). The sequencing around it is ours, because node-tar's `Pack` cannot meet the
 * bundle's requirements: it reads each file itself, so the content could not be hashed in the
 * same read; it turns files with several hard links into hard-link entries; and its `portable`
 * mode only masks group/other write bits (a 0600 file stays 0600) where we store exactly 0644 or
 * 0755. Every header here has uid/gid 0, empty user/group names, the file's real mtime in whole
 * seconds, and no directory entries (extractors create folders as needed; folder mtimes and modes
 * would only add noise that changes with every checkout).
 *
 * Memory: small files are read whole (a bounded number at a time, read ahead in parallel to hide
 * file-system latency); large ones are streamed in 1 MiB chunks. Output is batched into ~1 MiB
 * buffers so that gzip sees few, large writes. Nothing is proportional to the size of the tree.
 */
import { createHash } from 'node:crypto';
import { lstat, open } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { Header, Pax } from 'tar';
import { throwIfAborted } from '../core/abort.js';
import { BundleError, ErrorCodes } from '../core/errors.js';
import type { ScannedEntry } from './scan.js';
import type { BundleManifestFile } from './types.js';

const BLOCK = 512;
const CHUNK_BYTES = 1024 * 1024;
const SMALL_FILE_BYTES = 1024 * 1024;
const READ_AHEAD_FILES = 32;
const READ_AHEAD_BYTES = 8 * 1024 * 1024;
const MAX_USTAR_SIZE = 0o77777777777;
const ZEROS = Buffer.alloc(CHUNK_BYTES);

/** Options of {@link tarStream}. */
export interface TarStreamOptions {
  /** Folder every member is placed under, or null. */
  prefix: string | null;
  signal?: AbortSignal;
  /** Called once per member, in archive order, after its content has been written. */
  onEntry(file: BundleManifestFile, contentBytes: number): void;
}

/** Permission bits stored for a member: 0644, 0755 when any execute bit is set, 0777 for links. */
export function normalisedMode(type: 'file' | 'symlink', statMode: number): number {
  if (type === 'symlink') return 0o777;
  return statMode & 0o111 ? 0o755 : 0o644;
}

function headerBlocks(name: string, type: 'File' | 'SymbolicLink', size: number, mode: number, mtimeSeconds: number, linkpath?: string): Buffer {
  const mtime = new Date(mtimeSeconds * 1000);
  const header = new Header({ path: name, mode, uid: 0, gid: 0, size, mtime, type, linkpath: linkpath ?? '', uname: '', gname: '' });
  const needPax = header.encode();
  const block = header.block!;
  if (!needPax) return block;
  const pax = new Pax({
    path: name,
    linkpath: linkpath !== undefined && Buffer.byteLength(linkpath) > 99 ? linkpath : undefined,
    size: size > MAX_USTAR_SIZE ? size : undefined,
    mtime,
  }).encode();
  return Buffer.concat([pax, block]);
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? ZEROS.subarray(0, 0) : ZEROS.subarray(0, BLOCK - rest);
}

function changed(rel: string): BundleError {
  return new BundleError(
    ErrorCodes.BUNDLE_FILE_CHANGED,
    `'${rel}' changed while it was being bundled. Retry once nothing is writing into the dags folder.`,
    rel,
    { retryable: true },
  );
}

function readError(rel: string, err: unknown): BundleError {
  const code = (err as NodeJS.ErrnoException)?.code;
  return new BundleError(ErrorCodes.BUNDLE_IO, `Could not read '${rel}'${code ? ` (${code})` : ''}. Check that it is readable.`, rel, { cause: err });
}

interface SmallRead {
  buf: Buffer;
  st: Stats;
}

async function readSmall(entry: ScannedEntry): Promise<SmallRead> {
  const fh = await open(entry.abs, 'r').catch((err: unknown) => {
    throw readError(entry.path, err);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw changed(entry.path);
    const buf = await fh.readFile();
    return { buf, st };
  } catch (err) {
    if (err instanceof BundleError) throw err;
    throw readError(entry.path, err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Yield the bytes of a tar archive holding `entries` (already sorted), hashing each file's content
 * as it is read. Throws `ASTRO_BUNDLE_FILE_CHANGED` if a file changes size under us.
 */
export async function* tarStream(entries: readonly ScannedEntry[], options: TarStreamOptions): AsyncGenerator<Buffer> {
  const { prefix, signal } = options;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const push = (b: Buffer) => {
    if (b.length === 0) return;
    pending.push(b);
    pendingBytes += b.length;
  };
  const take = (): Buffer => {
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    return out;
  };

  // Read-ahead of small files: index -> pending read.
  const ahead = new Map<number, Promise<SmallRead>>();
  let aheadBytes = 0;
  let nextAhead = 0;
  const isSmall = (e: ScannedEntry) => e.type === 'file' && e.size <= SMALL_FILE_BYTES;
  const fillAhead = (from: number) => {
    if (nextAhead < from) nextAhead = from;
    while (nextAhead < entries.length && nextAhead < from + READ_AHEAD_FILES) {
      const e = entries[nextAhead]!;
      if (e.type === 'file' && !isSmall(e)) break; // never read past a large file
      if (isSmall(e)) {
        if (ahead.size > 0 && aheadBytes + e.size > READ_AHEAD_BYTES) break;
        const p = readSmall(e);
        p.catch(() => undefined); // consumed (and rethrown) when its turn comes
        ahead.set(nextAhead, p);
        aheadBytes += e.size;
      }
      nextAhead++;
    }
  };

  try {
    for (let i = 0; i < entries.length; i++) {
      throwIfAborted(signal);
      const entry = entries[i]!;
      const name = prefix ? `${prefix}/${entry.path}` : entry.path;
      if (entry.type === 'symlink') {
        const st = await lstat(entry.abs).catch((err: unknown) => {
          throw readError(entry.path, err);
        });
        const target = entry.linkTarget!;
        const mtimeSeconds = Math.max(0, Math.floor(st.mtimeMs / 1000));
        push(headerBlocks(name, 'SymbolicLink', 0, 0o777, mtimeSeconds, target));
        options.onEntry(
          { path: entry.path, size: 0, sha256: createHash('sha256').update(target, 'utf8').digest('hex'), mode: 0o777, type: 'symlink', linkTarget: target, mtimeSeconds },
          0,
        );
      } else if (isSmall(entry)) {
        fillAhead(i);
        let read = ahead.get(i);
        if (read) {
          ahead.delete(i);
          aheadBytes -= entry.size;
        } else {
          read = readSmall(entry);
        }
        const { buf, st } = await read;
        fillAhead(i + 1);
        const mode = normalisedMode('file', st.mode);
        const mtimeSeconds = Math.max(0, Math.floor(st.mtimeMs / 1000));
        push(headerBlocks(name, 'File', buf.length, mode, mtimeSeconds));
        push(buf);
        push(padding(buf.length));
        options.onEntry(
          { path: entry.path, size: buf.length, sha256: createHash('sha256').update(buf).digest('hex'), mode, type: 'file', mtimeSeconds },
          buf.length,
        );
      } else {
        if (pendingBytes > 0) yield take();
        const hash = createHash('sha256');
        const fh = await open(entry.abs, 'r').catch((err: unknown) => {
          throw readError(entry.path, err);
        });
        let size = 0;
        let mode = 0o644;
        let mtimeSeconds = 0;
        try {
          const st = await fh.stat();
          if (!st.isFile()) throw changed(entry.path);
          size = st.size;
          mode = normalisedMode('file', st.mode);
          mtimeSeconds = Math.max(0, Math.floor(st.mtimeMs / 1000));
          yield headerBlocks(name, 'File', size, mode, mtimeSeconds);
          let done = 0;
          while (done < size) {
            throwIfAborted(signal);
            const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - done));
            const { bytesRead } = await fh.read(buf, 0, buf.length, done);
            if (bytesRead === 0) throw changed(entry.path);
            hash.update(buf.subarray(0, bytesRead));
            done += bytesRead;
            yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
          }
          const after = await fh.stat();
          if (after.size !== st.size || after.mtimeMs !== st.mtimeMs) throw changed(entry.path);
        } catch (err) {
          if (err instanceof BundleError || (err as { code?: string }).code === 'ASTRO_ABORTED') throw err;
          throw readError(entry.path, err);
        } finally {
          await fh.close().catch(() => undefined);
        }
        const pad = padding(size);
        if (pad.length > 0) yield pad;
        options.onEntry({ path: entry.path, size, sha256: hash.digest('hex'), mode, type: 'file', mtimeSeconds }, size);
      }
      if (pendingBytes >= CHUNK_BYTES) yield take();
    }
    push(Buffer.alloc(BLOCK * 2));
    yield take();
  } finally {
    // Let abandoned read-aheads settle so no file handle outlives the generator.
    await Promise.allSettled([...ahead.values()]);
  }
}
