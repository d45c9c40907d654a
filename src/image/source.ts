/**
 * Turning an {@link ImageSource} into something readable: an archive on disk (indexed, read by
 * byte range, gunzipped to a temp file first when the archive itself is gzipped) or an image in
 * the Docker daemon.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { throwIfAborted } from '../core/abort.js';
import { abortAware } from '../core/scope.js';
import { AstroConfigError, ErrorCodes, ImageError } from '../core/errors.js';
import { fileData, TempSpace, type BlobData } from './blob.js';
import { sniffCompression, type ArchiveReader, type LayerCompression } from './layout.js';
import { indexTarFile, TarFormatError, type TarEntry } from './tar.js';
import type { ImageArchive, ImageSource } from './types.js';

/**
 * Where an image source points: an archive (`path` as given; `archive` when the source was an
 * already opened {@link ImageArchive}) or an image in the Docker daemon.
 */
export type ClassifiedSource =
  | { kind: 'archive'; path: string; archiveImage?: string; archive?: ImageArchive }
  | { kind: 'daemon'; name: string };

const PATH_LIKE = /^(\.{0,2}\/|~\/)|\.(tar|tar\.gz|tgz)$/i;

/**
 * Decide whether a source is an archive or a daemon image, as every image function does, without
 * opening anything: a string is an archive when such a file exists (or when it looks like a path:
 * then a missing file is an error), else a daemon image name or ID. Use it to decide whether to
 * {@link openImageArchive} a source before passing it to several functions.
 *
 * @throws ImageError `ASTRO_IMAGE_NOT_FOUND` for an empty source or a missing archive file;
 *   AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for an `{ archive }` that is closed or was not
 *   made by {@link openImageArchive}
 */
export async function classifySource(source: ImageSource): Promise<ClassifiedSource> {
  if (typeof source === 'object' && source !== null) {
    if ('archive' in source) {
      const archive = asDiskArchive(source.archive);
      archive.assertOpen();
      return source.archiveImage === undefined
        ? { kind: 'archive', path: archive.path, archive }
        : { kind: 'archive', path: archive.path, archiveImage: source.archiveImage, archive };
    }
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

/** Options of {@link openImageArchive}. */
export interface OpenImageArchiveOptions {
  /** Cancels the gunzip and indexing; the open then rejects with AstroAbortError and leaves no temp file. */
  signal?: AbortSignal;
  /** Folder for the gunzipped copy of a gzipped archive (as big as the uncompressed archive). @default os.tmpdir() */
  tempDir?: string;
}

/**
 * Open an image archive once (a `docker save` or OCI-layout tar, optionally gzipped): read its tar
 * index and, for a gzipped archive, gunzip it into a temp file, which for a big image takes time
 * and disk space as large as the uncompressed archive. Pass the handle as `{ archive }` to
 * {@link inspectImage}, {@link validateImage} and {@link pushImage} so they reuse that work, and
 * `close()` it in a `finally` to remove the temp copy; the functions given it never close it.
 *
 * @example
 * ```ts
 * const archive = await openImageArchive('./image.tar.gz', { signal });
 * try {
 *   await validateImage({ archive }, rules);
 *   await pushImage({ archive }, target, { auth });
 * } finally {
 *   await archive.close();
 * }
 * ```
 *
 * @throws ImageError `ASTRO_IMAGE_NOT_FOUND` when `path` is not a file, `ASTRO_IMAGE_INVALID_ARCHIVE`
 *   when it is not a readable tar (or gzipped tar); AstroAbortError when `signal` fires
 */
export async function openImageArchive(path: string, options: OpenImageArchiveOptions = {}): Promise<ImageArchive> {
  if (typeof path !== 'string' || path.trim() === '') {
    throw new ImageError(ErrorCodes.IMAGE_NOT_FOUND, 'No image archive given: pass the path of a `docker save` / OCI-layout archive.');
  }
  await assertFile(path);
  return DiskArchive.open(path, options.signal, options.tempDir);
}

/** Marks archives of this package, also across its ESM and CJS copies. */
const ARCHIVE_BRAND = Symbol.for('astro-deploy-sdk.DiskArchive');

/** The archive behind an `{ archive }` source. */
function asDiskArchive(value: unknown): DiskArchive {
  if (value && typeof value === 'object' && (value as Record<symbol, unknown>)[ARCHIVE_BRAND] === true) return value as DiskArchive;
  throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, '`{ archive }` takes a handle returned by openImageArchive(); pass `{ archivePath }` for an archive on disk.');
}

const asyncDisposeSymbol = (Symbol as { asyncDispose?: symbol }).asyncDispose;

/** Largest JSON member read into memory (configs and manifests are a few KB). */
const MAX_SMALL_MEMBER = 32 * 1024 * 1024;

/** An indexed archive on disk. */
export class DiskArchive implements ArchiveReader, ImageArchive {
  static {
    Object.defineProperty(DiskArchive.prototype, ARCHIVE_BRAND, { value: true });
    // `await using archive = await openImageArchive(...)` where the runtime has the symbol.
    if (asyncDisposeSymbol) {
      Object.defineProperty(DiskArchive.prototype, asyncDisposeSymbol, {
        value(this: DiskArchive) {
          return this.close();
        },
        configurable: true,
        writable: true,
      });
    }
  }

  private isClosed = false;

  private constructor(
    /** The tar actually read (a gunzipped temp copy for `.tar.gz` archives). */
    readonly tarPath: string,
    /** The path the caller gave. */
    readonly originalPath: string,
    private readonly entries: Map<string, TarEntry>,
    private readonly temp: TempSpace | undefined,
  ) {}

  /**
   * Open and index an archive; a gzipped archive is first gunzipped into a temp file (in
   * `tempDir`, default the OS temp folder). Every open of an archive goes through here.
   */
  static async open(path: string, signal?: AbortSignal, tempDir?: string): Promise<DiskArchive> {
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
        temp = new TempSpace(await mkdtemp(join(tempDir ?? tmpdir(), 'astro-image-')));
        tarPath = temp.file('archive.tar');
        await pipeline(createReadStream(path), createGunzip(), createWriteStream(tarPath), signal ? { signal } : {});
      }
      const list = await indexTarFile(tarPath);
      const entries = new Map<string, TarEntry>();
      for (const e of list) entries.set(e.name.replace(/\/+$/, ''), e);
      return new DiskArchive(tarPath, path, entries, temp);
    } catch (err) {
      await temp?.dispose();
      if (signal?.aborted) throw abortAware(err, signal);
      if (err instanceof ImageError) throw err;
      const reason = err instanceof TarFormatError ? err.message : (err as Error)?.message ?? String(err);
      throw new ImageError(
        ErrorCodes.IMAGE_INVALID_ARCHIVE,
        `${path} is not a readable image archive (${reason}). Create one with \`docker save -o image.tar <image>\`.`,
        path,
        { cause: err },
      );
    }
  }

  /** The path the caller gave. */
  get path(): string {
    return this.originalPath;
  }

  /** True when reads go to a gunzipped temp copy. */
  get gunzipped(): boolean {
    return this.temp !== undefined;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private closedError(): AstroConfigError {
    return new AstroConfigError(
      ErrorCodes.CONFIG_INVALID_OPTION,
      `The image archive ${this.originalPath} was already closed; open it again with openImageArchive() and close it only after the last inspect or push using it.`,
    );
  }

  /** Throw the closed-handle error when {@link close} was called. */
  assertOpen(): void {
    if (this.isClosed) throw this.closedError();
  }

  /** Follow symbolic and hard links to the regular file they name. */
  private resolve(name: string): TarEntry | undefined {
    this.assertOpen();
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
    const bytes = fileData(this.tarPath, e.offset, e.size);
    const isClosed = () => this.isClosed;
    return {
      size: bytes.size,
      // A closed archive has no file to read directly: the stream below says why.
      get file() {
        return isClosed() ? undefined : bytes.file;
      },
      // Read lazily (a layer may be read long after the plan is made): after close(), say so
      // instead of failing on a missing temp file.
      open: (start, end, buffers) => {
        if (!this.isClosed) return bytes.open(start, end, buffers);
        const err = this.closedError();
        return new Readable({
          read() {
            this.destroy(err);
          },
        });
      },
    };
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

  /** Remove the gunzipped temp copy, if one was made. Idempotent. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await this.temp?.dispose();
  }
}
