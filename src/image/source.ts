/**
 * Turning an {@link ImageSource} into something readable: an archive on disk (indexed, read by
 * byte range, gunzipped to a temp file first when the archive itself is gzipped) or an image in
 * the Docker daemon.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { throwIfAborted, toAbortError } from '../core/abort.js';
import { ErrorCodes, ImageError } from '../core/errors.js';
import { fileData, TempSpace, type BlobData } from './blob.js';
import { sniffCompression, type ArchiveReader, type LayerCompression } from './layout.js';
import { indexTarFile, TarFormatError, type TarEntry } from './tar.js';
import type { ImageSource } from './types.js';

/** Where an image source points. */
export type ClassifiedSource = { kind: 'archive'; path: string; archiveImage?: string } | { kind: 'daemon'; name: string };

const PATH_LIKE = /^(\.{0,2}\/|~\/)|\.(tar|tar\.gz|tgz)$/i;

/** Decide whether a source is an archive path or a daemon image. */
export async function classifySource(source: ImageSource): Promise<ClassifiedSource> {
  if (typeof source === 'object' && source !== null) {
    if ('archivePath' in source) {
      await assertFile(source.archivePath);
      return source.archiveImage === undefined
        ? { kind: 'archive', path: source.archivePath }
        : { kind: 'archive', path: source.archivePath, archiveImage: source.archiveImage };
    }
    if ('imageName' in source && source.imageName) return { kind: 'daemon', name: source.imageName };
  }
  if (typeof source !== 'string' || source.trim() === '') {
    throw new ImageError(ErrorCodes.IMAGE_NOT_FOUND, 'No image given: pass an image name or the path of an image archive.');
  }
  const isFile = await stat(source).then(
    (s) => s.isFile(),
    () => false,
  );
  if (isFile) return { kind: 'archive', path: source };
  if (PATH_LIKE.test(source)) await assertFile(source); // throws a clear "archive not found"
  return { kind: 'daemon', name: source };
}

async function assertFile(path: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile()) {
    throw new ImageError(
      ErrorCodes.IMAGE_NOT_FOUND,
      `Image archive ${path} does not exist or is not a file. Create it with \`docker save -o ${path} <image>\`.`,
      path,
    );
  }
}

/** Largest JSON member read into memory (configs and manifests are a few KB). */
const MAX_SMALL_MEMBER = 32 * 1024 * 1024;

/** An indexed archive on disk. */
export class DiskArchive implements ArchiveReader {
  private constructor(
    /** The tar actually read (a gunzipped temp copy for `.tar.gz` archives). */
    readonly tarPath: string,
    /** The path the caller gave. */
    readonly originalPath: string,
    private readonly entries: Map<string, TarEntry>,
    private readonly temp: TempSpace | undefined,
  ) {}

  /** Open and index an archive; a gzipped archive is first gunzipped into a temp file. */
  static async open(path: string, signal?: AbortSignal): Promise<DiskArchive> {
    throwIfAborted(signal);
    let tarPath = path;
    let temp: TempSpace | undefined;
    try {
      const head = Buffer.alloc(4);
      const fh = await open(path, 'r');
      try {
        await fh.read(head, 0, 4, 0);
      } finally {
        await fh.close();
      }
      if (sniffCompression(head) === 'gzip') {
        temp = new TempSpace(await mkdtemp(join(tmpdir(), 'astro-image-')));
        tarPath = temp.file('archive.tar');
        await pipeline(createReadStream(path), createGunzip(), createWriteStream(tarPath), signal ? { signal } : {});
      }
      const list = await indexTarFile(tarPath);
      const entries = new Map<string, TarEntry>();
      for (const e of list) entries.set(e.name.replace(/\/+$/, ''), e);
      return new DiskArchive(tarPath, path, entries, temp);
    } catch (err) {
      await temp?.dispose();
      if (err instanceof ImageError) throw err;
      if (signal?.aborted) throw toAbortError(signal);
      const reason = err instanceof TarFormatError ? err.message : (err as Error)?.message ?? String(err);
      throw new ImageError(
        ErrorCodes.IMAGE_INVALID_ARCHIVE,
        `${path} is not a readable image archive (${reason}). Create one with \`docker save -o image.tar <image>\`.`,
        path,
        { cause: err },
      );
    }
  }

  /** Follow symbolic and hard links to the regular file they name. */
  private resolve(name: string): TarEntry | undefined {
    let current = name.replace(/^\.\//, '');
    for (let hops = 0; hops < 10; hops++) {
      const e = this.entries.get(current);
      if (!e) return undefined;
      if (e.type === 'file') return e;
      if (e.type === 'symlink' && e.linkName) current = posix.normalize(posix.join(posix.dirname(current), e.linkName));
      else if (e.type === 'hardlink' && e.linkName) current = posix.normalize(e.linkName.replace(/^\.\//, ''));
      else return undefined;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  /** Byte range of a member. */
  data(name: string): BlobData {
    const e = this.resolve(name);
    if (!e) throw new ImageError(ErrorCodes.IMAGE_INVALID_ARCHIVE, `${this.originalPath}: member ${name} is missing`, this.originalPath);
    return fileData(this.tarPath, e.offset, e.size);
  }

  async readSmall(name: string): Promise<Buffer> {
    const e = this.resolve(name);
    if (!e) throw new Error(`member ${name} is missing`);
    if (e.size > MAX_SMALL_MEMBER) throw new Error(`member ${name} is too large to be metadata (${e.size} bytes)`);
    const fh = await open(this.tarPath, 'r');
    try {
      const buf = Buffer.alloc(e.size);
      await fh.read(buf, 0, e.size, e.offset);
      return buf;
    } finally {
      await fh.close();
    }
  }

  async sniff(name: string): Promise<LayerCompression> {
    const e = this.resolve(name);
    if (!e || e.size < 4) return 'none';
    const fh = await open(this.tarPath, 'r');
    try {
      const head = Buffer.alloc(4);
      await fh.read(head, 0, 4, e.offset);
      return sniffCompression(head);
    } finally {
      await fh.close();
    }
  }

  /** Remove the gunzipped temp copy, if one was made. */
  async close(): Promise<void> {
    await this.temp?.dispose();
  }
}
