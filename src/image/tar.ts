/**
 * Just enough tar to read image archives without extracting them.
 *
 * Two readers share one header parser:
 * - {@link indexTarFile} reads only the 512-byte headers of a file on disk and records where each
 *   member's data lies, so a layer can later be streamed straight from its byte range;
 * - {@link walkTarStream} walks a tar stream (the daemon's `GET /images/{name}/get`) once, handing
 *   each member's data to a callback as an async iterable, with backpressure and without buffering
 *   whole members.
 * Supported: ustar/GNU/pax headers (long names through GNU `L` and pax `path`), regular files,
 * directories, symbolic and hard links (`docker save` links duplicate layers).
 */
import { createReadStream } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Type of a tar member, reduced to what image archives contain. */
export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

/** One member of a tar archive. */
export interface TarEntry {
  /** Path inside the archive, without a leading `./`. */
  name: string;
  type: TarEntryType;
  /** Data size in bytes (0 for links and directories). */
  size: number;
  /** Offset of the first data byte in the archive (only from {@link indexTarFile}). */
  offset: number;
  /** Link target for symbolic and hard links. */
  linkName?: string;
}

const BLOCK = 512;

/** Thrown for bytes that are not a tar archive; callers turn it into a typed error. */
export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
}

function cString(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? slice.length : nul).toString('utf8');
}

/**
 * A numeric header field: octal text (NUL- or space-terminated), or GNU base-256 (high bit of the
 * first byte set, the rest a big-endian binary number) as GNU tar, Go's archive/tar and Python's
 * tarfile write for values that do not fit in octal (sizes of 8 GiB and more, far-future mtimes).
 */
function octal(buf: Buffer, start: number, length: number): number {
  const first = buf[start]!;
  if ((first & 0x80) !== 0) {
    // 0xff leads a negative (two's complement) number: never valid for a size.
    if ((first & 0x40) !== 0) throw new TarFormatError('negative base-256 numeric field');
    let value = first & 0x3f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + buf[start + i]!;
      if (value > Number.MAX_SAFE_INTEGER) throw new TarFormatError('base-256 numeric field too large');
    }
    return value;
  }
  const text = cString(buf, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`invalid octal field "${text}"`);
  return parseInt(text, 8);
}

/** A pax numeric record (`size=...`): a non-negative decimal integer. */
function paxNumber(key: string, value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`invalid pax ${key} record "${value.slice(0, 40)}"`);
  return n;
}

function checksumOk(header: Buffer): boolean {
  const stored = octal(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  return sum === stored;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space === -1) break;
    const len = Number(data.subarray(pos, space).toString('ascii'));
    if (!Number.isFinite(len) || len <= 0) break;
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

function normaliseName(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  while (n.startsWith('/')) n = n.slice(1);
  return n;
}

interface RawHeader {
  name: string;
  typeflag: string;
  size: number;
  linkName: string;
}

function parseHeader(header: Buffer): RawHeader | undefined {
  if (header.every((b) => b === 0)) return undefined;
  if (!checksumOk(header)) throw new TarFormatError('tar header checksum mismatch (not a tar archive, or corrupt)');
  const magic = cString(header, 257, 6);
  let name = cString(header, 0, 100);
  if (magic.startsWith('ustar')) {
    const prefix = cString(header, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    typeflag: String.fromCharCode(header[156] || 0x30),
    size: octal(header, 124, 12),
    linkName: cString(header, 157, 100),
  };
}

function entryType(flag: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      return 'file';
    case '5':
      return 'directory';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    default:
      return 'other';
  }
}

const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

/** Tracks GNU long-name and pax records that modify the next real header. */
class PendingMeta {
  longName: string | undefined;
  longLink: string | undefined;
  pax: Record<string, string> = {};
  globalPax: Record<string, string> = {};

  /** Returns true when the header was a meta record whose data must be fed to {@link absorb}. */
  isMeta(flag: string): boolean {
    return flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g';
  }

  absorb(flag: string, data: Buffer): void {
    if (flag === 'L') this.longName = cString(data, 0, data.length);
    else if (flag === 'K') this.longLink = cString(data, 0, data.length);
    else if (flag === 'x') this.pax = parsePax(data);
    else if (flag === 'g') this.globalPax = { ...this.globalPax, ...parsePax(data) };
  }

  /**
   * The entry a real header describes, with the pending records applied, and `dataSize`: the bytes
   * of data that follow its header. A pax `size` record overrides the header's size field (writers
   * use one for members of 8 GiB and more, and Go's archive/tar, which Docker uses, and Python's
   * tarfile then leave 0 in the field), so the data must be skipped by that size, not by the field.
   */
  apply(raw: RawHeader, offset: number): { entry: TarEntry; dataSize: number } {
    const pax = { ...this.globalPax, ...this.pax };
    const name = normaliseName(pax.path ?? this.longName ?? raw.name);
    const linkName = pax.linkpath ?? this.longLink ?? raw.linkName;
    const dataSize = pax.size !== undefined ? paxNumber('size', pax.size) : raw.size;
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = {};
    const type = entryType(raw.typeflag);
    const entry: TarEntry = { name, type, size: type === 'file' ? dataSize : 0, offset };
    if (type === 'symlink' || type === 'hardlink') entry.linkName = linkName;
    return { entry, dataSize };
  }
}

/** Meta records (long names, pax) are small; refuse absurd sizes instead of allocating them. */
const MAX_META_BYTES = 1024 * 1024;

/**
 * Index a tar file on disk by reading its headers only. Data is skipped with positional reads, so a
 * multi-gigabyte archive is indexed in milliseconds.
 */
export async function indexTarFile(path: string): Promise<TarEntry[]> {
  const handle = await open(path, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    const entries: TarEntry[] = [];
    const meta = new PendingMeta();
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    while (pos + BLOCK <= fileSize) {
      const { bytesRead } = await handle.read(header, 0, BLOCK, pos);
      if (bytesRead < BLOCK) break;
      const raw = parseHeader(header);
      if (!raw) break;
      const dataStart = pos + BLOCK;
      let dataSize = raw.size;
      if (meta.isMeta(raw.typeflag)) {
        if (raw.size > MAX_META_BYTES) throw new TarFormatError('oversized tar meta record');
        if (dataStart + raw.size > fileSize) throw new TarFormatError(`tar member "${raw.name}" is truncated`);
        const data = Buffer.alloc(raw.size);
        await handle.read(data, 0, raw.size, dataStart);
        meta.absorb(raw.typeflag, data);
      } else {
        const applied = meta.apply(raw, dataStart);
        dataSize = applied.dataSize;
        if (dataStart + dataSize > fileSize) throw new TarFormatError(`tar member "${applied.entry.name}" is truncated`);
        entries.push(applied.entry);
      }
      pos = dataStart + padded(dataSize);
    }
    if (entries.length === 0) throw new TarFormatError('empty or non-tar file');
    return entries;
  } finally {
    await handle.close();
  }
}

/** Pulls exact byte counts out of a chunked async source. */
class ByteReader {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private done = false;
  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.source.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value);
    if (chunk.length > 0) {
      this.buffered.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    return true;
  }

  /** Exactly `n` bytes, or fewer at end of input. */
  async readExact(n: number): Promise<Buffer> {
    while (this.bufferedBytes < n && (await this.fill()));
    const all = Buffer.concat(this.buffered);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedBytes = rest.length;
    return out;
  }

  /** Up to `n` bytes as they arrive, never more than `n` in total. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.bufferedBytes === 0 && !(await this.fill())) throw new TarFormatError('tar stream ended inside a member');
      const chunk = this.buffered.shift();
      if (!chunk) continue;
      this.bufferedBytes -= chunk.length;
      if (chunk.length > left) {
        const rest = chunk.subarray(left);
        this.buffered.unshift(rest);
        this.bufferedBytes += rest.length;
        left = 0;
        yield chunk.subarray(0, chunk.length - rest.length);
      } else {
        left -= chunk.length;
        yield chunk;
      }
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n));
  }
}

/**
 * Walk a tar stream once. `onEntry` gets each member with its data as an async iterable; it may
 * consume all, part or none of it (the rest is skipped). Links and directories get an empty body.
 */
export async function walkTarStream(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  onEntry: (entry: TarEntry, body: AsyncIterable<Buffer>) => Promise<void>,
): Promise<void> {
  const iterator = source[Symbol.asyncIterator]();
  try {
    await walkMembers(new ByteReader(iterator), onEntry);
  } finally {
    // The walk ends at the first zero block; what follows (the second zero block, record padding)
    // may still be unread. Returning the iterator destroys a stream source, so a daemon export's
    // socket is not left open with its request attached, keeping the process alive.
    await iterator.return?.();
  }
}

async function walkMembers(reader: ByteReader, onEntry: (entry: TarEntry, body: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  const meta = new PendingMeta();
  let sawEntry = false;
  for (;;) {
    const header = await reader.readExact(BLOCK);
    if (header.length < BLOCK) {
      if (!sawEntry) throw new TarFormatError('empty or non-tar stream');
      break; // some writers omit the two zero end blocks
    }
    const raw = parseHeader(header);
    if (!raw) break;
    sawEntry = true;
    if (meta.isMeta(raw.typeflag)) {
      if (raw.size > MAX_META_BYTES) throw new TarFormatError('oversized tar meta record');
      meta.absorb(raw.typeflag, await reader.readExact(raw.size));
      await reader.skip(padded(raw.size) - raw.size);
      continue;
    }
    const { entry, dataSize: size } = meta.apply(raw, -1);
    // Count what the callback took, so the rest can be skipped even if it stopped early.
    let delivered = 0;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of reader.take(size - delivered)) {
          delivered += chunk.length;
          yield chunk;
        }
      },
    };
    await onEntry(entry, body);
    await reader.skip(size - delivered);
    await reader.skip(padded(size) - size);
  }
}

/** One tree to put in a tar made by {@link packTrees}: the folder on disk and its path in the archive. */
export interface PackTree {
  from: string;
  to: string;
}

/** The largest value an octal field of `width` bytes holds (width - 1 digits and a NUL). */
const octalMax = (width: number) => 8 ** (width - 1) - 1;

/**
 * Write a numeric field: octal when it fits, else GNU base-256 (0x80, then the value big-endian
 * in the remaining bytes), as GNU tar does in its own format.
 */
function numericField(h: Buffer, offset: number, width: number, value: number): void {
  if (value <= octalMax(width)) {
    h.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, 'ascii');
    return;
  }
  let rest = BigInt(value);
  for (let i = width - 1; i >= 1; i--) {
    h[offset + i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  h[offset] = 0x80;
}

function tarHeader(name: string, size: number, type: '0' | '2' | '5' | 'x', mode: number, mtime: number, linkName = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  // Bounded writes: a name or link target longer than its field (in bytes) must not spill into
  // the fields after it (a stray "prefix" would rename the member); pax records carry the full
  // value. Buffer#write never writes a partial UTF-8 character.
  h.write(name, 0, 100, 'utf8');
  h.write(`${(mode & 0o7777).toString(8).padStart(7, '0')}\0`, 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  numericField(h, 124, 12, size);
  numericField(h, 136, 12, clampMtime(mtime));
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  h.write(linkName, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** Whole seconds since the epoch; earlier times are written as 0. */
const clampMtime = (mtime: number) => Math.max(0, Math.floor(mtime));

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  // The length prefix counts its own digits.
  let len = bodyBytes + 1;
  while (String(len).length + bodyBytes !== len) len = String(len).length + bodyBytes;
  return Buffer.from(`${len}${body}`);
}

/**
 * Header(s) for one member, as written by {@link packTrees}. A pax extended header carries what
 * the ustar header cannot hold: names or link targets longer than 100 bytes, and a size or mtime
 * of 8^11 or more (8 GiB; the year 2242), which do not fit in 11 octal digits.
 *
 * For such a size or mtime the ustar field holds the value in GNU base-256 as well, not the 0 that
 * Go's archive/tar and Python's tarfile put next to their pax record: GNU tar, Python's tarfile and
 * Go's archive/tar all honour the pax record and all parse base-256 in any header (not only in
 * GNU-format ones), so they read the same value either way; a reader that ignores pax but knows
 * base-256 still gets the size right, and one that knows neither fails on the field instead of
 * silently reading the member's data as headers.
 *
 * @internal exported for tests.
 */
export function memberHeaders(name: string, size: number, type: '0' | '2' | '5', mode: number, mtime: number, linkName = ''): Buffer[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid tar member size ${size}`);
  const out: Buffer[] = [];
  const pax: Buffer[] = [];
  if (Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
  if (Buffer.byteLength(linkName) > 100) pax.push(paxRecord('linkpath', linkName));
  if (size > octalMax(12)) pax.push(paxRecord('size', String(size)));
  if (clampMtime(mtime) > octalMax(12)) pax.push(paxRecord('mtime', String(clampMtime(mtime))));
  if (pax.length) {
    const data = Buffer.concat(pax);
    out.push(tarHeader('PaxHeader', data.length, 'x', 0o644, mtime), data, Buffer.alloc(padded(data.length) - data.length));
  }
  out.push(tarHeader(name, size, type, mode, mtime, linkName));
  return out;
}

/**
 * A tar stream of folders on disk, each placed under its `to` path. Regular files, folders and
 * symbolic links (kept as links) are included; sockets and devices are not. Files are streamed,
 * not read into memory.
 */
export async function* packTrees(trees: PackTree[]): AsyncGenerator<Buffer> {
  async function* walk(dir: string, to: string): AsyncGenerator<Buffer> {
    const entries = (await readdir(dir)).sort();
    for (const name of entries) {
      const full = join(dir, name);
      const inside = `${to}/${name}`;
      const st = await lstat(full);
      const mtime = st.mtimeMs / 1000;
      if (st.isSymbolicLink()) {
        yield* memberHeaders(inside, 0, '2', 0o777, mtime, await readlink(full));
      } else if (st.isDirectory()) {
        yield* memberHeaders(`${inside}/`, 0, '5', st.mode, mtime);
        yield* walk(full, inside);
      } else if (st.isFile()) {
        yield* memberHeaders(inside, st.size, '0', st.mode, mtime);
        let sent = 0;
        for await (const chunk of createReadStream(full, { end: Math.max(0, st.size - 1), highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
          if (st.size === 0) break;
          sent += chunk.length;
          yield chunk;
        }
        // A file that shrank while being read must still fill its declared size.
        if (sent < st.size) yield Buffer.alloc(st.size - sent);
        const pad = padded(st.size) - st.size;
        if (pad) yield Buffer.alloc(pad);
      }
    }
  }
  for (const tree of trees) {
    const to = tree.to.replace(/^\/+|\/+$/g, '');
    const st = await lstat(tree.from);
    yield* memberHeaders(`${to}/`, 0, '5', st.mode, st.mtimeMs / 1000);
    yield* walk(tree.from, to);
  }
  yield Buffer.alloc(BLOCK * 2);
}
