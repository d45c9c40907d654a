/**
 * The dags-folder scan: which files go into the bundle, which do not and why. It runs in phases,
 * each in its own module:
 *
 * 1. the walk (`scan-walk.ts`): Airflow's `.airflowignore` rules, then the SDK's bundle filters
 *    (default excludes and the `exclude` option);
 * 2. the symlink policy (`scan-links.ts`): links must resolve inside the dags folder, are shipped
 *    as links, and their targets are shipped too;
 * 3. the hidden-import guard (`hidden-import-guard.ts`);
 * 4. the assembly (here): the records of all phases into the sorted archive members and the
 *    {@link ScanResult} lists.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { throwIfAborted } from '../core/abort.js';
import type { Emit } from '../core/emitter.js';
import { AstroConfigError, BundleError, ErrorCodes } from '../core/errors.js';
import { runInScope } from '../core/scope.js';
import { guardHiddenImports } from './hidden-import-guard.js';
import { byPath, Shipped } from './scan-entry.js';
import type { ScannedEntry } from './scan-entry.js';
import { keepLinkTargets, resolveFileLinks, shipFolderLinks } from './scan-links.js';
import type { LinkMembers } from './scan-links.js';
import { bundleFilters, walkTree } from './scan-walk.js';
import type { Walk } from './scan-walk.js';
import type { BundleWarning, ScanOptions, ScanResult } from './types.js';

export { DEFAULT_EXCLUDES, IGNORE_FILE, IgnorePatternError } from './scan-walk.js';

/** {@link ScanResult} (without the public `entries` list) plus the packer's view of the entries. */
export interface ScanOutcome extends Omit<ScanResult, 'entries' | 'totalBytes'> {
  /** Sorted by path. */
  scannedEntries: ScannedEntry[];
  /** As in {@link ScanResult}; undefined when the regular files were not sized (`sizeFiles: false`). */
  totalBytes: number | undefined;
}

/** How {@link scanTree} scans, beyond the public options. */
export interface ScanTreeSettings {
  /**
   * lstat every walked regular file for its size (scan-time sizes in the entries and
   * `totalBytes`). `createBundle` turns it off: the packer sizes each file with the fstat it
   * makes when it opens it anyway, which saves one system call and one `Stats` object per file.
   * @default true
   */
  sizeFiles?: boolean;
}

const noWarnings: Emit<BundleWarning> = () => {};

/** {@link scanDags} plus the packer's view of the entries (scan-time sizes); each warning also goes to `emitWarning`. */
export async function scanTree(dir: string, options: ScanOptions = {}, emitWarning: Emit<BundleWarning> = noWarnings, settings: ScanTreeSettings = {}): Promise<ScanOutcome> {
  const sizeFiles = settings.sizeFiles ?? true;
  const syntax = options.syntax ?? 'glob';
  const signal = options.signal;
  throwIfAborted(signal);
  const filters = bundleFilters(options);
  const ignoredNonPython = options.ignoredNonPython ?? 'warn';
  if (ignoredNonPython !== 'warn' && ignoredNonPython !== 'ship' && ignoredNonPython !== 'drop') {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `ignoredNonPython must be 'warn', 'ship' or 'drop', got ${JSON.stringify(ignoredNonPython)}.`);
  }

  let root: string;
  try {
    root = await realpath(path.resolve(dir));
    if (!(await stat(root)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    throw new BundleError(ErrorCodes.BUNDLE_DIR_NOT_FOUND, `The dags folder '${dir}' does not exist or is not a folder. Pass the path of your project's dags folder.`, dir, { cause: err });
  }

  const warnings: BundleWarning[] = [];
  const warn = (w: BundleWarning) => {
    warnings.push(w);
    emitWarning(w);
  };

  const walk = await walkTree(root, syntax, filters, signal, warn, { sizeFiles, ignoredNonPython });
  const members: LinkMembers = { extra: new Map(), linkTargets: [] };
  await resolveFileLinks(root, walk.walkedLinks, members, warn);
  await resolveFileLinks(root, walk.ignoreLinks, members, warn);
  throwIfAborted(signal);

  const shipped = new Shipped(walk.walkedRels, walk.excluded);
  for (const k of walk.keptNonPython) shipped.kept.push(k);
  keepLinkTargets(members.linkTargets, walk.routed, walk.dirLinks, shipped, warn);
  await guardHiddenImports(root, options.hiddenImports ?? 'warn', walk.excluded, shipped, members, warn, signal);

  const { included, excluded, kept, totalBytes, scannedEntries } = assemble(walk, shipped, members);
  return { included, excluded, kept, warnings, syntax, root, totalBytes: sizeFiles ? totalBytes : undefined, scannedEntries };
}

/** The sorted lists of the outcome, from the records of every phase. */
function assemble(walk: Walk, shipped: Shipped, members: LinkMembers): Pick<ScanOutcome, 'included' | 'excluded' | 'kept' | 'scannedEntries'> & { totalBytes: number } {
  const { added, kept } = shipped;
  const { extra } = members;
  // The walked paths are distinct; the added ones are distinct and may repeat walked ones.
  const addedOnly = added.size > 0 ? [...added].filter((rel) => !shipped.isWalked(rel)) : [];
  const included = walk.walkedRels;
  for (const rel of addedOnly) included.push(rel);
  included.sort();
  shipFolderLinks(walk.dirLinks, included, extra);

  const keptPaths = new Set(kept.map((k) => k.path));
  const excluded = walk.excluded.filter((e) => !(e.type === 'file' && keptPaths.has(e.path))).sort(byPath);
  const scannedEntries = walk.walkedFiles;
  if (extra.size > 0) {
    // Drop the walked records that an `extra` entry replaces (same path), then add the extras.
    let n = 0;
    for (const entry of scannedEntries) if (!extra.has(entry.path)) scannedEntries[n++] = entry;
    scannedEntries.length = n;
    for (const entry of walk.walkedIgnoreFiles) if (!extra.has(entry.path)) scannedEntries.push(entry);
    for (const entry of extra.values()) scannedEntries.push(entry);
  } else {
    for (const entry of walk.walkedIgnoreFiles) scannedEntries.push(entry);
  }
  scannedEntries.sort(byPath);
  let totalBytes = 0;
  for (const e of scannedEntries) if (e.type === 'file') totalBytes += e.size;
  return { included, excluded, kept: kept.sort(byPath), totalBytes, scannedEntries };
}

/**
 * Walk a dags folder and decide what a bundle of it holds, applying `.airflowignore` exactly as
 * Airflow's discovery does (see `ScanResult` for the meaning of each list), plus the default
 * excludes, the `exclude` option, the symlink policy and the hidden-import guard. Reads nothing
 * but folder listings, file metadata, ignore files and (for the guard) Python sources.
 * Throws `BundleError` with `ASTRO_BUNDLE_DIR_NOT_FOUND`, `ASTRO_BUNDLE_IGNORE_INVALID`
 * (a glob line pathspec rejects, with file and line), `ASTRO_BUNDLE_SYMLINK_ESCAPE`,
 * `ASTRO_BUNDLE_SYMLINK_LOOP`, `ASTRO_BUNDLE_DIR_REACHED_TWICE`, `ASTRO_BUNDLE_HIDDEN_IMPORT`
 * (with `hiddenImports: 'error'`) or `ASTRO_BUNDLE_IO`; `ASTRO_ABORTED` once `signal` fired,
 * whatever else failed on the way out.
 */
export async function scanDags(dir: string, options: ScanOptions = {}): Promise<ScanResult> {
  return await runInScope(options.signal, async () => {
    const scan = await scanTree(dir, options, noWarnings, { sizeFiles: true });
    return {
      included: scan.included,
      excluded: scan.excluded,
      kept: scan.kept,
      entries: scan.scannedEntries.map(({ path: p, type, linkTarget }) => (linkTarget === undefined ? { path: p, type } : { path: p, type, linkTarget })),
      warnings: scan.warnings,
      syntax: scan.syntax,
      root: scan.root,
      totalBytes: scan.totalBytes!,
    };
  });
}
