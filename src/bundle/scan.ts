/**
 * The dags-folder walk: which files go into the bundle, which do not and why, mirroring Airflow's
 * `find_path_from_directory` (see `ignore-rules.ts` for the rules themselves):
 *
 * - top-down walk that follows symlinked folders; each folder starts with a copy of its parent's
 *   rules and appends the lines of its own `.airflowignore`;
 * - ignored folders are pruned before descent, so their own ignore files are never read;
 * - every walked folder is registered by its resolved path, and reaching one a second time is an
 *   error (Airflow raises "Detected recursive loop"); this is also what stops symlink cycles;
 * - files are matched by their path through the links (a file under `alias/` is `alias/x.py`).
 *
 * On top of Airflow's rules the scan applies the SDK's own bundle filters (default excludes and
 * the `exclude` option), the symlink policy (links must resolve inside the dags folder, are shipped
 * as links, their targets are shipped too) and the hidden-import guard.
 */
import { lstat, readdir, readFile, realpath, readlink, stat } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import { setImmediate } from 'node:timers/promises';
import path from 'node:path';
import { throwIfAborted } from '../core/abort.js';
import { AstroConfigError, BundleError, ErrorCodes } from '../core/errors.js';
import { findHiddenImports } from './hidden-imports.js';
import { compileGlobRule, compileRule, decidingRule, isRule, ruleIgnores } from './ignore-rules.js';
import type { GlobRule, IgnoreRule, RuleOrigin } from './ignore-rules.js';
import { splitIgnoreLines } from './python-text.js';
import type { BundleManifestFile, BundleWarning, ExcludedPath, IgnoreSyntax, KeptPath, RuleSource, ScanOptions, ScanResult } from './types.js';

/** Name of the ignore file Airflow reads in every walked folder. */
export const IGNORE_FILE = '.airflowignore';

/** The default bundle excludes (gitwildmatch): paths that never matter at runtime. */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze(['.git/', '__pycache__/', '*.pyc']);

/** Python files larger than this are not read by the hidden-import guard, in bytes. */
const MAX_IMPORT_SCAN_BYTES = 8 * 1024 * 1024;

/** An `.airflowignore` line that Airflow cannot compile; Airflow fails the whole walk on it. */
export class IgnorePatternError extends BundleError {
  /** 1-based line of the pattern in {@link BundleError.path}. */
  readonly line: number;
  /** The offending line (after comment stripping). */
  readonly pattern: string;
  constructor(message: string, file: string, line: number, pattern: string) {
    super(ErrorCodes.BUNDLE_IGNORE_INVALID, message, file);
    this.line = line;
    this.pattern = pattern;
  }
}

/**
 * An archive member, one record from the walk to the manifest: the scan creates it with the size
 * it saw (`sha256` empty, `mode` and `mtimeSeconds` 0), the packer completes it in place with what
 * it packed, and the same object is then the manifest entry. Several records per file (walk,
 * scan, packer, manifest), each with its own copy of the path, are what made peak memory grow by
 * ~1.8 KB per file; the fields are in the manifest's order so the objects serialise as before.
 * The absolute path is not kept: it is rebuilt from the dags folder when the file is opened
 * ({@link absoluteIn}).
 */
export type ScannedEntry = BundleManifestFile;

/** {@link ScanResult} (without the public `entries` list) plus the packer's view of the entries. */
export interface ScanOutcome extends Omit<ScanResult, 'entries'> {
  /** Sorted by path. */
  scannedEntries: ScannedEntry[];
}

interface DirJob {
  rel: string;
  abs: string;
  real: string;
  /** `real` relative to the dags folder, forward slashes: equal to `rel` unless a symlinked folder is on the route. */
  physRel: string;
  /** Shared with the parent's job and siblings when no ignore file adds to them (never mutated). */
  rules: IgnoreRule[];
  /** Resolved paths of this folder and its ancestors on the walked route. */
  chain: string[];
}

type Kind = 'dir' | 'file' | 'file-link' | 'dir-link' | 'broken-link' | 'loop-link' | 'special';

/** A file link or dangling link met by the walk (rare: regular files get a {@link ScannedEntry} at once). */
interface LinkFile {
  rel: string;
  kind: 'file-link' | 'broken-link';
  /** Resolved folder holding it. */
  physDir: string;
  name: string;
}

const toPosix = (p: string) => (path.sep === '/' ? p : p.split(path.sep).join('/'));
const join = (a: string, b: string) => (a === '' ? b : `${a}/${b}`);
/**
 * {@link join} for the paths kept once per file: `Array.prototype.join` gives a flat string,
 * where `+` and template literals give a rope (an extra object per file, which V8 flattens into
 * a new string anyway as soon as the path is sorted or matched).
 */
const joinFlat = (a: string, b: string) => (a === '' ? b : [a, b].join('/'));
const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** The absolute path of `rel` (forward slashes, inside the dags folder `root`), built when it is needed. */
export function absoluteIn(root: string, rel: string): string {
  const native = path.sep === '/' ? rel : rel.split('/').join(path.sep);
  return root.endsWith(path.sep) ? root + native : root + path.sep + native;
}

/** A regular file's record before packing. */
function fileEntry(physRel: string, size = 0): ScannedEntry {
  return { path: physRel, size, sha256: '', mode: 0, type: 'file', mtimeSeconds: 0 };
}

/** A symlink's record before packing. */
function linkEntry(physRel: string, linkTarget: string): ScannedEntry {
  return { path: physRel, size: 0, sha256: '', mode: 0, type: 'symlink', linkTarget, mtimeSeconds: 0 };
}

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function describe(source: RuleOrigin, pattern: string): string {
  if (source === 'default') return `matched default exclude '${pattern}'`;
  if (source === 'option') return `matched exclude option '${pattern}'`;
  return `matched '${pattern}' in ${source.file}:${source.line}`;
}

function ioError(what: string, p: string, err: unknown): BundleError {
  const code = (err as NodeJS.ErrnoException)?.code;
  return new BundleError(
    ErrorCodes.BUNDLE_IO,
    `Could not ${what} '${p}'${code ? ` (${code})` : ''}. Check that it exists and is readable.`,
    p,
    { cause: err },
  );
}

/** Compile the default excludes and the `exclude` option into one last-match-wins glob list. */
function bundleFilters(options: ScanOptions): GlobRule[] {
  const defaults = options.defaultExcludes === false ? [] : options.defaultExcludes === true || options.defaultExcludes === undefined ? DEFAULT_EXCLUDES : options.defaultExcludes;
  const rules: GlobRule[] = [];
  const add = (pattern: string, origin: 'default' | 'option') => {
    const r = compileGlobRule(pattern, '', origin);
    if ('syntax' in r) rules.push(r);
    else if (r.kind === 'invalid') {
      throw new AstroConfigError(
        ErrorCodes.CONFIG_INVALID_OPTION,
        `Invalid ${origin === 'default' ? 'defaultExcludes' : 'exclude'} pattern ${JSON.stringify(pattern)}: ${r.message}. Use gitignore-style patterns.`,
      );
    }
  };
  for (const p of defaults) add(p, 'default');
  for (const p of options.exclude ?? []) add(p, 'option');
  return rules;
}

/** {@link scanDags} plus the packer's view of the entries (absolute paths, scan-time sizes). */
export async function scanTree(dir: string, options: ScanOptions = {}, onWarning?: (w: BundleWarning) => void): Promise<ScanOutcome> {
  const syntax = options.syntax ?? 'glob';
  const signal = options.signal;
  throwIfAborted(signal);
  const filters = bundleFilters(options);

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
    onWarning?.(w);
  };
  const excluded: ExcludedPath[] = [];
  // What the walk ships. A regular file costs one record and one path string (shared by
  // `walkedRels`, the record and later the manifest) unless a symlinked folder is on its route;
  // everything about links is kept on the side, as it is rare.
  /** Regular files met by the walk, in walk order; their physical paths are unique (a folder is walked once). */
  const walkedFiles: ScannedEntry[] = [];
  /** The same for the regular `.airflowignore` files. */
  const walkedIgnoreFiles: ScannedEntry[] = [];
  /** File links and dangling links, in walk order, and those that are `.airflowignore` files. */
  const walkedLinks: LinkFile[] = [];
  const ignoreLinks: LinkFile[] = [];
  /** Logical path of every walked file, ignore files included (all distinct). */
  const walkedRels: string[] = [];
  /** Files (not ignore files) reached through a symlinked folder: logical and physical paths, in walk order. */
  const routed: Array<{ rel: string; physRel: string }> = [];
  /** Logical paths of the records whose physical path differs (for error messages). */
  const logicalOf = new Map<ScannedEntry, string>();
  const dirLinks: Array<{ logical: string; entry: ScannedEntry }> = [];
  const registered = new Map<string, string>();
  const stack: DirJob[] = [{ rel: '', abs: root, real: root, physRel: '', rules: [], chain: [root] }];

  const exclude = (rel: string, type: ExcludedPath['type'], rule: IgnoreRule | GlobRule) => {
    excluded.push({ path: rel, type, reason: describe(rule.source, rule.pattern), source: rule.source, pattern: rule.pattern });
  };

  while (stack.length > 0) {
    throwIfAborted(signal);
    const job = stack.pop()!;
    let dirents: Dirent[];
    try {
      dirents = await readdir(job.abs, { withFileTypes: true });
    } catch (err) {
      throw ioError('list the folder', job.rel || '.', err);
    }
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const kinds = await classifyAll(dirents, job.abs);
    const routedDir = job.rel !== job.physRel;

    // 1. This folder's own ignore file extends the inherited rules.
    let rules = job.rules;
    const ignoreAt = dirents.findIndex((d, i) => d.name === IGNORE_FILE && (kinds[i] === 'file' || kinds[i] === 'file-link'));
    if (ignoreAt >= 0) {
      const file = join(job.rel, IGNORE_FILE);
      rules = [...job.rules, ...(await readRules(path.join(job.abs, IGNORE_FILE), file, job.rel, syntax, warn))];
      walkedRels.push(file);
      if (kinds[ignoreAt] === 'file') {
        const entry = fileEntry(joinFlat(job.physRel, IGNORE_FILE));
        walkedIgnoreFiles.push(entry);
        if (routedDir) logicalOf.set(entry, file);
      } else {
        ignoreLinks.push({ rel: file, kind: 'file-link', physDir: job.real, name: IGNORE_FILE });
      }
    }

    // 2. Sub-folders: prune, then register (loop / second-route detection), then queue.
    const subJobs: DirJob[] = [];
    for (let i = 0; i < dirents.length; i++) {
      const kind = kinds[i]!;
      if (kind !== 'dir' && kind !== 'dir-link') continue;
      const name = dirents[i]!.name;
      const rel = join(job.rel, name);
      const airflowRule = decidingRule(rules, rel, true);
      if (ruleIgnores(airflowRule)) {
        exclude(rel, 'directory', airflowRule!);
        continue;
      }
      const real = kind === 'dir' ? path.join(job.real, name) : await realpath(path.join(job.abs, name)).catch((err: unknown) => {
        throw ioError('resolve the symlink', rel, err);
      });
      const filterRule = decidingRule(filters, rel, true);
      const filtered = ruleIgnores(filterRule);
      if (!isInside(root, real)) {
        if (filtered) {
          exclude(rel, 'directory', filterRule!);
          continue;
        }
        throw new BundleError(
          ErrorCodes.BUNDLE_SYMLINK_ESCAPE,
          `The symlink '${rel}' points to '${real}', outside the dags folder. Only links that stay inside the dags folder can be deployed: copy the files in, or exclude the link in .airflowignore.`,
          rel,
        );
      }
      const seen = registered.get(real);
      if (seen !== undefined) {
        const loop = job.chain.includes(real);
        throw new BundleError(
          loop ? ErrorCodes.BUNDLE_SYMLINK_LOOP : ErrorCodes.BUNDLE_DIR_REACHED_TWICE,
          loop
            ? `The folder '${rel}' leads back to '${seen || '.'}' through a symlink loop. Airflow refuses such a dags folder ("Detected recursive loop"): remove the link or ignore it in .airflowignore.`
            : `The folder '${rel}' is the same folder as '${seen}' (reached twice through a symlink). Airflow refuses such a dags folder ("Detected recursive loop"): remove one route or ignore it in .airflowignore.`,
          rel,
        );
      }
      registered.set(real, rel);
      if (filtered) {
        exclude(rel, 'directory', filterRule!);
        continue;
      }
      if (kind === 'dir-link') {
        const linkPhys = path.join(job.real, name);
        dirLinks.push({ logical: rel, entry: linkEntry(toPosix(path.relative(root, linkPhys)), toPosix(path.relative(job.real, real)) || '.') });
      }
      const physRel = kind === 'dir' ? joinFlat(job.physRel, name) : toPosix(path.relative(root, real));
      subJobs.push({ rel, abs: path.join(job.abs, name), real, physRel, rules, chain: [...job.chain, real] });
    }
    for (let i = subJobs.length - 1; i >= 0; i--) stack.push(subJobs[i]!);

    // 3. Files.
    for (let i = 0; i < dirents.length; i++) {
      const kind = kinds[i]!;
      const name = dirents[i]!.name;
      if (kind === 'dir' || kind === 'dir-link' || name === IGNORE_FILE) continue;
      const rel = joinFlat(job.rel, name);
      const airflowRule = decidingRule(rules, rel, false);
      if (ruleIgnores(airflowRule)) {
        exclude(rel, 'file', airflowRule!);
        continue;
      }
      const filterRule = decidingRule(filters, rel, false);
      if (ruleIgnores(filterRule)) {
        exclude(rel, 'file', filterRule!);
        continue;
      }
      if (kind === 'loop-link') {
        throw new BundleError(
          ErrorCodes.BUNDLE_SYMLINK_LOOP,
          `The symlink '${rel}' never resolves (it is part of a symlink loop). Remove it or ignore it in .airflowignore.`,
          rel,
        );
      }
      if (kind === 'special') {
        excluded.push({ path: rel, type: 'file', reason: 'not a regular file or symlink (FIFO, socket or device)', source: 'special-file' });
        warn({ code: 'SPECIAL_FILE_SKIPPED', message: `'${rel}' is a FIFO, socket or device file; it is not shipped.`, file: rel });
        continue;
      }
      walkedRels.push(rel);
      const physRel = routedDir ? joinFlat(job.physRel, name) : rel;
      if (routedDir) routed.push({ rel, physRel });
      if (kind === 'file') {
        const entry = fileEntry(physRel);
        walkedFiles.push(entry);
        if (routedDir) logicalOf.set(entry, rel);
      } else {
        walkedLinks.push({ rel, kind, physDir: job.real, name });
      }
    }
  }

  // Archive members for the walked files (physical paths, links rewritten to relative targets).
  // Regular walked files are unique by path and stay in their arrays; `extra` holds every other
  // member (links, link targets, hidden modules), keyed by path: a later entry for the same path
  // replaces an earlier one, and one for a walked file's path (the same file) replaces it.
  const extra = new Map<string, ScannedEntry>();
  const linkTargets: Array<{ link: string; target: string }> = [];
  // Regular files (nearly all of a tree) are stat'ed synchronously, in slices that give the event
  // loop back every few milliseconds: a thread-pool round trip per file costs more than the
  // lstat itself (see tar-writer.ts for the figures), and this runs once per file of the tree.
  let sliceStart = performance.now();
  for (const list of [walkedFiles, walkedIgnoreFiles]) {
    for (const entry of list) {
      try {
        entry.size = lstatSync(absoluteIn(root, entry.path)).size;
      } catch (err) {
        throw ioError('read', logicalOf.get(entry) ?? entry.path, err);
      }
      if (performance.now() - sliceStart >= 4) {
        await setImmediate();
        throwIfAborted(signal);
        sliceStart = performance.now();
      }
    }
  }
  const addLinkEntries = async (links: LinkFile[]) => {
    await mapLimit(links, 16, async (f) => {
      const physAbs = path.join(f.physDir, f.name);
      const physRel = toPosix(path.relative(root, physAbs));
      if (f.kind === 'broken-link') {
        const text = await readlink(physAbs).catch((err: unknown) => {
          throw ioError('read the symlink', f.rel, err);
        });
        const lexical = path.resolve(f.physDir, text);
        if (!isInside(root, lexical)) throw escapeError(f.rel, lexical);
        extra.set(physRel, linkEntry(physRel, toPosix(path.relative(f.physDir, lexical))));
        warn({ code: 'BROKEN_SYMLINK', message: `The symlink '${f.rel}' points to '${text}', which does not exist; it is shipped as a dangling link.`, file: f.rel, path: toPosix(path.relative(root, lexical)) });
        return;
      }
      const real = await realpath(physAbs).catch((err: unknown) => {
        throw ioError('resolve the symlink', f.rel, err);
      });
      if (!isInside(root, real)) throw escapeError(f.rel, real);
      const st = await lstat(real).catch((err: unknown) => {
        throw ioError('read', f.rel, err);
      });
      const targetRel = toPosix(path.relative(root, real));
      extra.set(physRel, linkEntry(physRel, toPosix(path.relative(f.physDir, real))));
      extra.set(targetRel, fileEntry(targetRel, st.size));
      linkTargets.push({ link: f.rel, target: targetRel });
    });
  };
  await addLinkEntries(walkedLinks);
  await addLinkEntries(ignoreLinks);
  throwIfAborted(signal);

  // `included` is the walked paths plus what the steps below add. A set of the walked paths is
  // only built when a step needs to look one up (links, symlinked folders, the guard).
  const added = new Set<string>();
  let walkedSet: Set<string> | undefined;
  const isWalked = (rel: string) => (walkedSet ??= new Set(walkedRels)).has(rel);
  const isIncluded = (rel: string) => added.has(rel) || isWalked(rel);

  // Exclusion lookup: the path itself or its nearest excluded folder.
  const excludedByPath = new Map(excluded.map((e) => [e.path, e]));
  const exclusionOf = (rel: string): ExcludedPath | undefined => {
    for (let p = rel; p !== ''; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') {
      const e = excludedByPath.get(p);
      if (e) return e;
    }
    return undefined;
  };
  const kept: KeptPath[] = [];

  // Targets of shipped links that the rules left out are shipped too, or the link would dangle.
  const warnedLinks = new Set<string>();
  for (const { link, target } of linkTargets.sort((a, b) => (a.link < b.link ? -1 : 1))) {
    if (isIncluded(target)) continue;
    const by = exclusionOf(target);
    added.add(target);
    kept.push({ path: target, reason: 'symlink-target', linkedFrom: link, excludedBy: by?.source ?? 'default' });
    if (!warnedLinks.has(link)) {
      warnedLinks.add(link);
      warn({
        code: 'SYMLINK_TARGET_KEPT',
        message: `The shipped symlink '${link}' points to '${target}', which ${by ? by.reason : 'is excluded'}; the target is shipped so the link resolves (Airflow still does not parse it).`,
        file: link,
        path: target,
      });
    }
  }
  // Files reached through a symlinked folder live physically under its target: ship those too.
  for (const { rel, physRel } of routed) {
    if (physRel === rel || isIncluded(physRel)) continue;
    added.add(physRel);
    const by = exclusionOf(physRel);
    const viaLink = dirLinks.filter((d) => rel.startsWith(`${d.logical}/`)).pop()?.logical ?? rel;
    kept.push({ path: physRel, reason: 'symlink-target', linkedFrom: viaLink, excludedBy: by?.source ?? 'default' });
    if (!warnedLinks.has(viaLink)) {
      warnedLinks.add(viaLink);
      warn({
        code: 'SYMLINK_TARGET_KEPT',
        message: `Files reached through the symlinked folder '${viaLink}' live under '${physRel.slice(0, physRel.lastIndexOf('/')) || '.'}', which ${by ? by.reason : 'is excluded'}; they are shipped there so the link resolves (Airflow still parses them only through the link).`,
        file: viaLink,
        path: physRel,
      });
    }
  }

  // The hidden-import guard.
  const mode = options.hiddenImports ?? 'warn';
  if (mode !== 'off' && excluded.some((e) => e.source !== 'default' && e.source !== 'special-file')) {
    const hidden = await findHiddenImports({
      included: new Set([...walkedRels, ...added]),
      exclusionOf,
      isFile: async (rel) => (await stat(path.join(root, rel)).catch(() => undefined))?.isFile() ?? false,
      readText: async (rel) => {
        try {
          const abs = path.join(root, rel);
          const st = await stat(abs);
          if (!st.isFile() || st.size > MAX_IMPORT_SCAN_BYTES) return undefined;
          return (await readFile(abs)).toString('utf8');
        } catch {
          return undefined;
        }
      },
      signal,
    });
    throwIfAborted(signal);
    if (hidden.length > 0 && mode === 'error') {
      const list = hidden.slice(0, 5).map((h) => `'${h.path}' (imported by ${h.importedBy}:${h.line}, ${h.excludedBy.reason})`).join('; ');
      throw new BundleError(
        ErrorCodes.BUNDLE_HIDDEN_IMPORT,
        `${hidden.length} module(s) excluded from the bundle are imported by shipped files: ${list}${hidden.length > 5 ? '; ...' : ''}. Ship them (remove them from the exclusions, or set hiddenImports: 'warn'), or remove the imports.`,
        hidden[0]!.path,
      );
    }
    for (const h of hidden) {
      await materialise(root, h.path, extra, linkTargets);
      added.add(h.path);
      kept.push({ path: h.path, reason: 'hidden-import', importedBy: { file: h.importedBy, line: h.line, module: h.module }, excludedBy: h.excludedBy.source });
      warn({
        code: 'HIDDEN_IMPORT_KEPT',
        message: `'${h.path}' ${h.excludedBy.reason}, but ${h.importedBy} imports it (line ${h.line}); it is shipped anyway so the import works (Airflow still does not parse it as a DAG file).`,
        file: h.importedBy,
        line: h.line,
        path: h.path,
      });
    }
    // Targets of links met while shipping hidden modules.
    for (const { target } of linkTargets) added.add(target);
  }

  // The walked paths are distinct; the added ones are distinct and may repeat walked ones.
  const addedOnly = added.size > 0 ? [...added].filter((rel) => !isWalked(rel)) : [];
  const includedList = walkedRels;
  for (const rel of addedOnly) includedList.push(rel);
  includedList.sort();
  // Symlinked folders are shipped as links when anything below them is shipped.
  for (const { logical, entry } of dirLinks) {
    const prefix = `${logical}/`;
    if (hasPrefix(includedList, prefix)) extra.set(entry.path, entry);
  }

  const keptPaths = new Set(kept.map((k) => k.path));
  const finalExcluded = excluded.filter((e) => !(e.type === 'file' && keptPaths.has(e.path))).sort(byPath);
  const scannedEntries = walkedFiles;
  if (extra.size > 0) {
    // Drop the walked records that an `extra` entry replaces (same path), then add the extras.
    let n = 0;
    for (const entry of scannedEntries) if (!extra.has(entry.path)) scannedEntries[n++] = entry;
    scannedEntries.length = n;
    for (const entry of walkedIgnoreFiles) if (!extra.has(entry.path)) scannedEntries.push(entry);
    for (const entry of extra.values()) scannedEntries.push(entry);
  } else {
    for (const entry of walkedIgnoreFiles) scannedEntries.push(entry);
  }
  scannedEntries.sort(byPath);
  let totalBytes = 0;
  for (const e of scannedEntries) if (e.type === 'file') totalBytes += e.size;
  return {
    included: includedList,
    excluded: finalExcluded,
    kept: kept.sort(byPath),
    warnings,
    syntax,
    root,
    totalBytes,
    scannedEntries,
  };
}

/**
 * Walk a dags folder and decide what a bundle of it holds, applying `.airflowignore` exactly as
 * Airflow's discovery does (see `ScanResult` for the meaning of each list), plus the default
 * excludes, the `exclude` option, the symlink policy and the hidden-import guard. Reads nothing
 * but folder listings, file metadata, ignore files and (for the guard) Python sources.
 * Throws `BundleError` with `ASTRO_BUNDLE_DIR_NOT_FOUND`, `ASTRO_BUNDLE_IGNORE_INVALID`
 * (a glob line pathspec rejects, with file and line), `ASTRO_BUNDLE_SYMLINK_ESCAPE`,
 * `ASTRO_BUNDLE_SYMLINK_LOOP`, `ASTRO_BUNDLE_DIR_REACHED_TWICE`, `ASTRO_BUNDLE_HIDDEN_IMPORT`
 * (with `hiddenImports: 'error'`) or `ASTRO_BUNDLE_IO`.
 */
export async function scanDags(dir: string, options: ScanOptions = {}): Promise<ScanResult> {
  const scan = await scanTree(dir, options);
  return {
    included: scan.included,
    excluded: scan.excluded,
    kept: scan.kept,
    entries: scan.scannedEntries.map(({ path: p, type, linkTarget }) => (linkTarget === undefined ? { path: p, type } : { path: p, type, linkTarget })),
    warnings: scan.warnings,
    syntax: scan.syntax,
    root: scan.root,
    totalBytes: scan.totalBytes,
  };
}

/**
 * The kind of each (sorted) folder entry. Only symlinks cost a system call (to tell a file link
 * from a folder link, a dangling link or a loop); they are resolved concurrently.
 */
async function classifyAll(dirents: Dirent[], parentAbs: string): Promise<Kind[]> {
  const kinds: Kind[] = [];
  const links: Array<Promise<void>> = [];
  for (let i = 0; i < dirents.length; i++) {
    const d = dirents[i]!;
    if (d.isDirectory()) kinds.push('dir');
    else if (d.isFile()) kinds.push('file');
    else if (d.isSymbolicLink()) {
      kinds.push('special');
      links.push(linkKind(path.join(parentAbs, d.name)).then((kind) => void (kinds[i] = kind)));
    } else kinds.push('special');
  }
  if (links.length > 0) await Promise.all(links);
  return kinds;
}

async function linkKind(abs: string): Promise<Kind> {
  let st: Stats;
  try {
    st = await stat(abs);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ELOOP' ? 'loop-link' : 'broken-link';
  }
  return st.isDirectory() ? 'dir-link' : st.isFile() ? 'file-link' : 'special';
}

async function readRules(abs: string, file: string, folder: string, syntax: IgnoreSyntax, warn: (w: BundleWarning) => void): Promise<IgnoreRule[]> {
  let text: string;
  try {
    const bytes = await readFile(abs);
    // Python decodes with UTF-8 and keeps a byte-order mark as a character of the first line.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    if (err instanceof TypeError) {
      throw new BundleError(ErrorCodes.BUNDLE_IGNORE_INVALID, `${file} is not valid UTF-8; Airflow cannot read it either. Save it as UTF-8.`, file, { cause: err });
    }
    throw ioError('read', file, err);
  }
  if (text.startsWith('\ufeff')) {
    warn({ code: 'IGNORE_FILE_BOM', message: `${file} starts with a UTF-8 byte-order mark; Airflow treats it as part of the first pattern. Save the file without a BOM.`, file, line: 1 });
  }
  const rules: IgnoreRule[] = [];
  for (const { line, text: pattern } of splitIgnoreLines(text)) {
    const source: RuleSource = { file, line };
    const r = compileRule(syntax, pattern, folder, source);
    if (isRule(r)) {
      rules.push(r);
      continue;
    }
    if (r.kind === 'invalid' && r.fatal) {
      throw new IgnorePatternError(
        `Invalid glob pattern ${JSON.stringify(pattern)} in ${file} line ${line}: ${r.message}. Airflow stops parsing the whole dags folder on such a line; fix or remove it (escape a literal '#' is not possible: '#' always starts a comment).`,
        file,
        line,
        pattern,
      );
    }
    const code = r.kind === 'noop' ? 'IGNORE_NOOP_PATTERN' : r.kind === 'invalid' ? 'IGNORE_INVALID_PATTERN' : 'IGNORE_UNSUPPORTED_PATTERN';
    const what =
      r.kind === 'noop'
        ? 'has no effect'
        : r.kind === 'invalid'
          ? 'is not a valid Python regular expression; Airflow skips it, and so does the bundle'
          : 'is valid in Python but cannot be evaluated here; the bundle ignores it (it may ship files Airflow will not parse, which is harmless)';
    warn({ code, message: `Pattern ${JSON.stringify(pattern)} in ${file} line ${line} ${what} (${r.message}).`, file, line, pattern });
  }
  return rules;
}

function escapeError(rel: string, target: string): BundleError {
  return new BundleError(
    ErrorCodes.BUNDLE_SYMLINK_ESCAPE,
    `The symlink '${rel}' points to '${target}', outside the dags folder. Only links that stay inside the dags folder can be deployed: copy the file in, or exclude the link in .airflowignore.`,
    rel,
  );
}

/**
 * Add the archive members needed to open `rel` (a logical path that may run through symlinks)
 * after extraction: every symlink on the way (as a relative link) and the final regular file.
 */
async function materialise(root: string, rel: string, entries: Map<string, ScannedEntry>, linkTargets: Array<{ link: string; target: string }>): Promise<void> {
  const parts = rel.split('/');
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    const candidate = path.join(cur, parts[i]!);
    const st = await lstat(candidate).catch((err: unknown) => {
      throw ioError('read', rel, err);
    });
    if (!st.isSymbolicLink()) {
      if (i === parts.length - 1) {
        const physRel = toPosix(path.relative(root, candidate));
        entries.set(physRel, fileEntry(physRel, st.size));
      }
      cur = candidate;
      continue;
    }
    const real = await realpath(candidate).catch((err: unknown) => {
      throw ioError('resolve the symlink', rel, err);
    });
    if (!isInside(root, real)) throw escapeError(toPosix(path.relative(root, candidate)), real);
    const linkRel = toPosix(path.relative(root, candidate));
    entries.set(linkRel, linkEntry(linkRel, toPosix(path.relative(cur, real)) || '.'));
    if (i === parts.length - 1) {
      const tst = await lstat(real);
      const targetRel = toPosix(path.relative(root, real));
      entries.set(targetRel, fileEntry(targetRel, tst.size));
      linkTargets.push({ link: linkRel, target: targetRel });
    }
    cur = real;
  }
}

function hasPrefix(sorted: string[], prefix: string): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < prefix) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo]!.startsWith(prefix);
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}
