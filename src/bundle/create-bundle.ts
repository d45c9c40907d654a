/**
 * `createBundle`: scan a dags folder, then stream a deterministic `.tar.gz` of it to a temporary
 * file outside the project or to a caller's stream, with a manifest and progress events.
 */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, BundleError, ErrorCodes, isAstroError } from '../core/errors.js';
import { runInScope } from '../core/scope.js';
import { OutputMeter, parallelGzip } from './gzip.js';
import { fingerprint } from './manifest.js';
import { IGNORE_FILE, scanTree } from './scan.js';
import { tarStream } from './tar-writer.js';
import type { BundleEvent, BundleManifest, BundleManifestFile, BundleResult, CreateBundleOptions } from './types.js';

/** Name of the temporary bundle file inside its temporary folder. */
const BUNDLE_FILE_NAME = 'dags.tar.gz';
/**
 * zlib level when the caller gives none. Level 3 is the slowest of zlib's fast levels (greedy
 * matching, no lazy evaluation): on the bundle benchmark's trees it takes about a third less
 * deflate CPU than level 6, for output 2% larger than ours at 6 on Python-like text and 1%
 * on CSV extracts, which keeps bundles within 1% of `pigz -6`'s size while packing faster.
 * Levels 1 and 2 save little more CPU and come out 0.5-1% larger than level 3 on CSV.
 */
export const DEFAULT_COMPRESSION_LEVEL = 3;
/** Output the bundle file's write stream may hold before the packer waits for it: 1 MiB. */
const OUTPUT_BUFFER_BYTES = 1024 * 1024;

function normalisePrefix(prefix: CreateBundleOptions['prefix']): string | null {
  if (prefix === false) return null;
  if (prefix === undefined) return 'dags';
  const p = prefix.replace(/^\/+|\/+$/g, '');
  if (p === '' || p.includes('\\') || p.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Invalid bundle prefix ${JSON.stringify(prefix)}: use a relative folder name such as 'dags', or false for no prefix.`);
  }
  return p;
}

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * Bundle a dags folder into a gzip'd tar, as a DAG deploy uploads it.
 *
 * The archive holds the regular files and symlinks chosen by {@link scanDags} (same options),
 * sorted by path, under `prefix/` (default `dags/`), with uid/gid 0, no user/group names, modes
 * 0644/0755 (0777 for links), real modification times, no folder entries, and a gzip header
 * without timestamp: the same tree gives the same bytes. Nothing is written into the dags folder,
 * and the bundle is never held in memory.
 *
 * @throws BundleError `ASTRO_BUNDLE_EMPTY` when nothing but `.airflowignore` files would be
 *   shipped (deploying that removes every DAG) unless `allowEmpty`; `ASTRO_BUNDLE_OUTPUT_INSIDE_DAGS`
 *   when the output folder is inside the dags folder; `ASTRO_BUNDLE_FILE_CHANGED` (retryable) when a
 *   file changes while it is packed; the scan's errors (see {@link scanDags}); `ASTRO_ABORTED` once
 *   `signal` fired, whatever else failed on the way out.
 *
 * @example
 * ```ts
 * const bundle = await createBundle('./dags', { syntax: ignoreSyntaxForRuntime('3.0-4') });
 * try { await upload(bundle.path!) } finally { await bundle.cleanup() }
 * ```
 */
export async function createBundle(dir: string, options: CreateBundleOptions = {}): Promise<BundleResult> {
  return await runInScope(options.signal, () => bundle(dir, options));
}

/** {@link createBundle} inside its scope, which maps the error it ends with. */
async function bundle(dir: string, options: CreateBundleOptions): Promise<BundleResult> {
  const started = performance.now();
  const signal = options.signal;
  const emit = emitterFor<BundleEvent>(options.onEvent, options.logger);
  const prefix = normalisePrefix(options.prefix);
  const level = options.compressionLevel ?? DEFAULT_COMPRESSION_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `compressionLevel must be an integer from 0 to 9, got ${String(options.compressionLevel)}.`);
  }
  const output = options.output ?? { type: 'file' };

  // A caller's stream is destroyed on every failure, so that a consumer (an upload) never waits
  // forever for bytes that will not come. Without an error argument here: the stream may have no
  // 'error' listener yet, and an unhandled 'error' event would crash the caller's process; the
  // consumer sees a premature close. (Failures while packing go through `pipeline`, which
  // destroys it with the error while its own listeners are attached.)
  const failStream = (err: unknown) => {
    if (output.type === 'stream') (output.stream as NodeJS.WritableStream & { destroy?: () => void }).destroy?.();
    return err;
  };
  // The scan does not size the files: the packer does, with the fstat it makes after each open.
  const scan = await scanTree(dir, options, (warning) => emit({ type: 'bundle:warning', warning }), { sizeFiles: false }).catch((err: unknown) => {
    throw failStream(err);
  });
  if (!options.allowEmpty && !scan.scannedEntries.some((e) => path.posix.basename(e.path) !== IGNORE_FILE)) {
    throw failStream(new BundleError(
      ErrorCodes.BUNDLE_EMPTY,
      `Nothing to ship from '${dir}': every file is excluded${scan.scannedEntries.length > 0 ? ' (only .airflowignore files are left)' : ''}. Deploying an empty bundle removes every DAG from the deployment; pass allowEmpty: true if that is what you want.`,
      dir,
    ));
  }
  const totalFiles = scan.scannedEntries.length;
  emit({
    type: 'bundle:scan-complete',
    totalFiles,
    excluded: scan.excluded.length,
    kept: scan.kept.length,
    warnings: scan.warnings.length,
    durationMs: Math.round(performance.now() - started),
  });

  // Where the bytes go.
  let tempDir: string | undefined;
  let filePath: string | undefined;
  let destination: NodeJS.WritableStream;
  if (output.type === 'file') {
    const outDir = path.resolve(output.dir ?? os.tmpdir());
    let outReal: string;
    try {
      outReal = await realpath(outDir);
    } catch (err) {
      throw new BundleError(ErrorCodes.BUNDLE_IO, `The output folder '${outDir}' does not exist. Create it or pass another output.dir.`, outDir, { cause: err });
    }
    if (isInside(scan.root, outReal)) {
      throw new BundleError(
        ErrorCodes.BUNDLE_OUTPUT_INSIDE_DAGS,
        `The output folder '${outDir}' is inside the dags folder; the bundle would end up in the project. Use a folder outside it (the default is the system temp folder).`,
        outDir,
      );
    }
    tempDir = await mkdtemp(path.join(outReal, 'astro-dags-'));
    filePath = path.join(tempDir, BUNDLE_FILE_NAME);
    // A buffer of one piece's output (instead of 16 KiB) lets the packer read and deflate the
    // next piece while the last one is written, rather than waiting for each write to drain.
    destination = createWriteStream(filePath, { flags: 'wx', mode: 0o600, highWaterMark: OUTPUT_BUFFER_BYTES });
  } else {
    destination = output.stream;
  }
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned || tempDir === undefined) return;
    cleaned = true;
    await rm(tempDir, { recursive: true, force: true });
  };

  // Pack. The packer completes each scanned entry into its manifest entry, in archive order.
  const files: BundleManifestFile[] = scan.scannedEntries;
  let doneFiles = 0;
  let doneBytes = 0;
  let lastProgress = 0;
  const interval = options.progressIntervalMs ?? 200;
  const finisher = new OutputMeter();
  try {
    throwIfAborted(signal);
    // The tar generator feeds gzip directly (no stream buffer in between), which lets it reuse
    // its output buffer: gzip copies every chunk before asking for the next.
    const source = tarStream(scan.scannedEntries, {
      root: scan.root,
      prefix,
      signal,
      reuseBuffers: true,
      onEntry: (_file, bytes) => {
        doneFiles++;
        doneBytes += bytes;
        const now = performance.now();
        if (doneFiles === totalFiles) {
          emit({ type: 'bundle:progress', files: doneFiles, totalFiles, bytes: doneBytes, totalBytes: doneBytes });
        } else if (now - lastProgress >= interval) {
          lastProgress = now;
          emit({ type: 'bundle:progress', files: doneFiles, totalFiles, bytes: doneBytes });
        }
      },
    });
    await pipeline(source, parallelGzip(level), finisher, destination, signal ? { signal } : {});
  } catch (err) {
    await cleanup().catch(() => undefined);
    if (isAstroError(err)) throw err;
    throw new BundleError(ErrorCodes.BUNDLE_IO, `Writing the bundle failed: ${(err as Error)?.message ?? String(err)}.`, filePath, { cause: err });
  }

  const sha256 = finisher.digest();
  const manifest: BundleManifest = {
    prefix,
    syntax: scan.syntax,
    files,
    excluded: scan.excluded,
    kept: scan.kept,
    totals: { files: files.length, bytes: files.reduce((n, f) => n + f.size, 0), excluded: scan.excluded.length },
    fingerprint: fingerprint(files, prefix),
  };
  emit({
    type: 'bundle:complete',
    ...(filePath !== undefined ? { path: filePath } : {}),
    bytes: finisher.bytes,
    contentBytes: manifest.totals.bytes,
    sha256,
    fingerprint: manifest.fingerprint,
    files: files.length,
    durationMs: Math.round(performance.now() - started),
  });
  return {
    ...(filePath !== undefined ? { path: filePath } : {}),
    root: scan.root,
    bytes: finisher.bytes,
    sha256,
    manifest,
    warnings: scan.warnings,
    cleanup,
  };
}
