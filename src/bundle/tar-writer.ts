/**
 * Deterministic tar stream for a list of scanned entries.
 *
 * Header encoding is node-tar's (`Header`, and `Pax` for names or link targets that do not fit a
 * USTAR header); the common member (short ASCII name) gets the same bytes from `tar-header.ts`,
 * without node-tar's per-header objects. The sequencing around it is ours, because node-tar's
 * `Pack` cannot meet the bundle's requirements: it reads each file itself, so the content could
 * not be hashed in the same read; it turns files with several hard links into hard-link entries; and its `portable`
 * mode only masks group/other write bits (a 0600 file stays 0600) where we store exactly 0644 or
 * 0755. Every header here has uid/gid 0, empty user/group names, the file's real mtime in whole
 * seconds, and no directory entries (extractors create folders as needed; folder mtimes and modes
 * would only add noise that changes with every checkout).
 *
 * Reading: files up to 256 KiB are read with synchronous calls (open, fstat, one read, close),
 * in batches that give the event loop back (`setImmediate`) after every ~1 MiB or 4 ms of work.
 * A thread-pool round trip per open/fstat/read/close costs more than the read itself for such
 * files (measured on Node 20 with 20,000 files of 2-8 KB: ~1.8 s through the async API against
 * ~0.6 s this way), and that cost decides whether bundling keeps up with `tar -czf`. Larger
 * files are streamed asynchronously in 1 MiB chunks. Output is batched into ~1 MiB buffers so
 * that gzip sees few, large writes, and nothing held is proportional to the size of the tree.
 */
import { createHash, hash as sha256Of } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { throwIfAborted } from '../core/abort.js';
import { TimeSlice } from '../core/time-slice.js';
import { BundleError, ErrorCodes } from '../core/errors.js';
import { absoluteIn } from './scan-entry.js';
import { encodeSimpleHeader } from './tar-header.js';
import type { ScannedEntry } from './scan-entry.js';
import type { BundleManifestFile } from './types.js';

const BLOCK = 512;
const CHUNK_BYTES = 1024 * 1024;
const SMALL_FILE_BYTES = 256 * 1024;
const MAX_USTAR_SIZE = 0o77777777777;

/** Options of {@link tarStream}. */
export interface TarStreamOptions {
  /** The dags folder (fully resolved) that entry paths are relative to. */
  root: string;
  /** Folder every member is placed under, or null. */
  prefix: string | null;
  signal?: AbortSignal;
  /** Called once per member, in archive order, after its content has been written, with the completed entry. */
  onEntry(file: BundleManifestFile, contentBytes: number): void;
  /**
   * Reuse one output buffer: a yielded buffer is then only valid until the next one is requested,
   * so the consumer must copy what it keeps (as {@link parallelGzip} does) and pull the generator
   * directly (no stream buffering in between). Keeps the packer from leaving a dead 1 MiB buffer
   * behind per MiB of archive. @default false
   */
  reuseBuffers?: boolean;
}

/** Permission bits stored for a member: 0644, 0755 when any execute bit is set, 0777 for links. */
export function normalisedMode(type: 'file' | 'symlink', statMode: number): number {
  if (type === 'symlink') return 0o777;
  return statMode & 0o111 ? 0o755 : 0o644;
}

let nodeTarModule: Promise<typeof import('tar')> | undefined;
/**
 * node-tar, imported the first time a header needs it (a long or non-ASCII name or link target):
 * loading it costs ~40 ms of CPU at startup, and most bundles never need it.
 */
const nodeTar = () => (nodeTarModule ??= import('tar'));

/**
 * The header block(s) of a member. Without a PAX record the result is `scratch` itself (valid
 * until the next call): encoding every header into one zeroed block, instead of letting node-tar
 * allocate 512 bytes per member, keeps the packer from leaving a small buffer behind per file.
 */
async function headerBlocks(scratch: Buffer, name: string, type: 'File' | 'SymbolicLink', size: number, mode: number, mtimeSeconds: number, linkpath?: string): Promise<Buffer> {
  if (encodeSimpleHeader(scratch, 0, name, type === 'File' ? '0' : '2', size, mode, mtimeSeconds, linkpath)) return scratch;
  const { Header, Pax } = await nodeTar();
  const mtime = new Date(mtimeSeconds * 1000);
  const header = new Header({ path: name, mode, uid: 0, gid: 0, size, mtime, type, linkpath: linkpath ?? '', uname: '', gname: '' });
  // node-tar's own block is zero-filled, and encode() reads back what it wrote: start from zeros.
  scratch.fill(0);
  const needPax = header.encode(scratch, 0);
  const block = scratch;
  if (!needPax) return block;
  const pax = new Pax({
    path: name,
    // In PAX when it does not fit, or is not ASCII (USTAR fields carry no encoding).
    linkpath: linkpath !== undefined && (Buffer.byteLength(linkpath) > 99 || Buffer.byteLength(linkpath) !== linkpath.length) ? linkpath : undefined,
    size: size > MAX_USTAR_SIZE ? size : undefined,
    mtime,
  }).encode();
  return Buffer.concat([pax, block]);
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

/**
 * Open a regular file and fstat it: the packer's only look at its size (the scan does not stat
 * files). Returns the descriptor when the file is small enough to be read synchronously; a larger
 * one is closed again, to be streamed through the asynchronous API.
 */
function openSmall(root: string, rel: string): { fd: number; st: Stats } | undefined {
  let fd: number;
  try {
    fd = openSync(absoluteIn(root, rel), 'r');
  } catch (err) {
    throw readError(rel, err);
  }
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw readError(rel, err);
  }
  if (!st.isFile()) {
    closeSync(fd);
    throw changed(rel);
  }
  if (st.size <= SMALL_FILE_BYTES) return { fd, st };
  closeSync(fd);
  return undefined;
}

/**
 * Yield the bytes of a tar archive holding `entries` (already sorted), hashing each file's content
 * as it is read. Each entry is completed in place with what was packed (size, hash, stored mode
 * and mtime), which makes it its manifest entry: no second object per file. Throws
 * `ASTRO_BUNDLE_FILE_CHANGED` if a file changes size under us.
 */
export async function* tarStream(entries: readonly ScannedEntry[], options: TarStreamOptions): AsyncGenerator<Buffer> {
  const { root, prefix, signal } = options;
  const reuse = options.reuseBuffers === true;
  // Output is assembled in `chunk`: headers are copied in and small files are read straight into
  // it, so a small file costs no allocation of its own. A chunk is never written to again once
  // yielded (the consumer owns it).
  let chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  let used = 0;
  /** Make room for `n` more bytes; returns the full part of the current chunk to yield, if any. */
  const reserve = (n: number): Buffer | undefined => {
    if (used + n <= chunk.length) return undefined;
    const full = used > 0 ? chunk.subarray(0, used) : undefined;
    if (!reuse || chunk.length < n) chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
    used = 0;
    return full;
  };
  const flush = (): Buffer | undefined => {
    if (used === 0) return undefined;
    const full = chunk.subarray(0, used);
    if (!reuse) chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    used = 0;
    return full;
  };
  const append = (b: Buffer) => {
    b.copy(chunk, used);
    used += b.length;
  };
  const zeroPad = (size: number) => {
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    chunk.fill(0, used, used + pad);
    used += pad;
  };
  const scratch = Buffer.alloc(BLOCK);
  const slice = new TimeSlice(signal);
  let sliceBytes = 0;
  let opened: { fd: number; st: Stats } | undefined;

  for (const entry of entries) {
    throwIfAborted(signal);
    const name = prefix ? `${prefix}/${entry.path}` : entry.path;
    if (entry.type === 'symlink') {
      const st = await lstat(absoluteIn(root, entry.path)).catch((err: unknown) => {
        throw readError(entry.path, err);
      });
      const target = entry.linkTarget!;
      const mtimeSeconds = Math.max(0, Math.floor(st.mtimeMs / 1000));
      const header = await headerBlocks(scratch, name, 'SymbolicLink', 0, 0o777, mtimeSeconds, target);
      const full = reserve(header.length);
      if (full) yield full;
      append(header);
      entry.size = 0;
      entry.sha256 = sha256Of('sha256', target, 'hex');
      entry.mode = 0o777;
      entry.mtimeSeconds = mtimeSeconds;
      options.onEntry(entry, 0);
    } else if ((opened = openSmall(root, entry.path)) !== undefined) {
      const { fd, st } = opened;
      let size: number;
      let mode: number;
      let mtimeSeconds: number;
      let sha256: string;
      try {
        size = st.size;
        mode = normalisedMode('file', st.mode);
        mtimeSeconds = Math.max(0, Math.floor(st.mtimeMs / 1000));
        const header = await headerBlocks(scratch, name, 'File', size, mode, mtimeSeconds);
        const full = reserve(header.length + size + BLOCK);
        if (full) yield full;
        append(header);
        const start = used;
        // Ask for one byte more than fstat said: a file that grew since comes back longer, one that
        // shrank comes back short, and either would no longer match the header. Reading at EOF
        // returns what is there, so an unchanged file still costs one read call, and no second
        // fstat is needed (what was read is what is hashed and packed, whatever its mtime now).
        let done = 0;
        while (done < size) {
          const n = readSync(fd, chunk, start + done, size + 1 - done, done);
          if (n === 0) throw changed(entry.path);
          done += n;
        }
        if (done !== size) throw changed(entry.path);
        // One-shot hash: no Hash object per file.
        sha256 = sha256Of('sha256', chunk.subarray(start, start + size), 'hex');
        used += size;
        zeroPad(size);
      } catch (err) {
        if (err instanceof BundleError) throw err;
        throw readError(entry.path, err);
      } finally {
        closeSync(fd);
      }
      sliceBytes += size + BLOCK;
      entry.size = size;
      entry.sha256 = sha256;
      entry.mode = mode;
      entry.mtimeSeconds = mtimeSeconds;
      options.onEntry(entry, size);
    } else {
      const full = flush();
      if (full) yield full;
      const hash = createHash('sha256');
      const fh = await open(absoluteIn(root, entry.path), 'r').catch((err: unknown) => {
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
        const header = await headerBlocks(scratch, name, 'File', size, mode, mtimeSeconds);
        // `scratch` is rewritten by the next header: only a consumer that copies may keep it.
        yield reuse ? header : Buffer.from(header);
        let done = 0;
        while (done < size) {
          throwIfAborted(signal);
          // `chunk` is empty here (flushed above) and, when reused, free once the consumer asks again.
          const buf = reuse ? chunk.subarray(0, Math.min(chunk.length, size - done)) : Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - done));
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
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad > 0) yield Buffer.alloc(pad);
      entry.size = size;
      entry.sha256 = hash.digest('hex');
      entry.mode = mode;
      entry.mtimeSeconds = mtimeSeconds;
      options.onEntry(entry, size);
    }
    if (used >= CHUNK_BYTES - BLOCK) {
      const full = flush();
      if (full) yield full;
    }
    if (sliceBytes >= CHUNK_BYTES || slice.expired) {
      await slice.yield();
      sliceBytes = 0;
    }
  }
  const full = reserve(BLOCK * 2);
  if (full) yield full;
  chunk.fill(0, used, used + BLOCK * 2);
  used += BLOCK * 2;
  yield chunk.subarray(0, used);
}
