/**
 * The walk: which files the rules leave in and which they leave out and why, mirroring Airflow's
 * `find_path_from_directory` (see `ignore-rules.ts` for the rules themselves):
 *
 * - top-down walk that follows symlinked folders; each folder starts with a copy of its parent's
 *   rules and appends the lines of its own `.airflowignore`;
 * - ignored folders are pruned before descent, so their own ignore files are never read;
 * - every walked folder is registered by its resolved path ({@link FolderRegistry});
 * - files are matched by their path through the links (a file under `alias/` is `alias/x.py`).
 *
 * After Airflow's rules, the SDK's own bundle filters (default excludes and the `exclude`
 * option) apply. Links are classified and folder links resolved here, as the walk needs them to
 * descend; file links are only collected, for `scan-links.ts`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import { throwIfAborted } from '../core/abort.js';
import { TimeSlice } from '../core/time-slice.js';
import { AstroConfigError, BundleError, ErrorCodes } from '../core/errors.js';
import { compileGlobRule, compileRule, decidingRule, isRule, ruleIgnores } from './ignore-rules.js';
import type { GlobRule, IgnoreRule, RuleOrigin } from './ignore-rules.js';
import { splitIgnoreLines } from './python-text.js';
import { absoluteIn, fileEntry, ioError, isInside, join, joinFlat, linkEntry, toPosix } from './scan-entry.js';
import type { ScannedEntry } from './scan-entry.js';
import { classifyAll, escapeError, FolderRegistry, resolveFolderLink } from './scan-links.js';
import type { FolderLink, LinkFile } from './scan-links.js';
import type { BundleWarning, ExcludedPath, IgnoreSyntax, RuleSource, ScanOptions } from './types.js';

/** Name of the ignore file Airflow reads in every walked folder. */
export const IGNORE_FILE = '.airflowignore';

/** The default bundle excludes (gitwildmatch): paths that never matter at runtime. */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze(['.git/', '__pycache__/', '*.pyc']);

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
 * What the walk found. A regular file costs one record and one path string (shared by
 * `walkedRels`, the record and later the manifest) unless a symlinked folder is on its route;
 * everything about links is kept on the side, as it is rare.
 */
export interface Walk {
  excluded: ExcludedPath[];
  /** Regular files, in walk order, sized; their physical paths are unique (a folder is walked once). */
  walkedFiles: ScannedEntry[];
  /** The same for the regular `.airflowignore` files. */
  walkedIgnoreFiles: ScannedEntry[];
  /** File links and dangling links, in walk order, and those that are `.airflowignore` files. */
  walkedLinks: LinkFile[];
  ignoreLinks: LinkFile[];
  /** Logical path of every walked file, ignore files included (all distinct). */
  walkedRels: string[];
  /** Files (not ignore files) reached through a symlinked folder: logical and physical paths, in walk order. */
  routed: Array<{ rel: string; physRel: string }>;
  /** Symlinked folders walked, in walk order. */
  dirLinks: FolderLink[];
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

function describe(source: RuleOrigin, pattern: string): string {
  if (source === 'default') return `matched default exclude '${pattern}'`;
  if (source === 'option') return `matched exclude option '${pattern}'`;
  return `matched '${pattern}' in ${source.file}:${source.line}`;
}

/** Compile the default excludes and the `exclude` option into one last-match-wins glob list. */
export function bundleFilters(options: ScanOptions): GlobRule[] {
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

/**
 * Walk the dags folder `root` (resolved) with the ignore `syntax` and the bundle `filters`. With
 * `sizeFiles` false the regular files' records keep size 0: the walk then costs no system call per
 * file, and the packer sizes each file when it opens it.
 */
export async function walkTree(
  root: string,
  syntax: IgnoreSyntax,
  filters: GlobRule[],
  signal: AbortSignal | undefined,
  warn: (w: BundleWarning) => void,
  sizeFiles = true,
): Promise<Walk> {
  const excluded: ExcludedPath[] = [];
  const walkedFiles: ScannedEntry[] = [];
  const walkedIgnoreFiles: ScannedEntry[] = [];
  const walkedLinks: LinkFile[] = [];
  const ignoreLinks: LinkFile[] = [];
  const walkedRels: string[] = [];
  const routed: Array<{ rel: string; physRel: string }> = [];
  /** Logical paths of the records whose physical path differs (for error messages). */
  const logicalOf = new Map<ScannedEntry, string>();
  const dirLinks: FolderLink[] = [];
  const registry = new FolderRegistry();
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
      const real = kind === 'dir' ? path.join(job.real, name) : await resolveFolderLink(path.join(job.abs, name), rel);
      const filterRule = decidingRule(filters, rel, true);
      const filtered = ruleIgnores(filterRule);
      if (!isInside(root, real)) {
        if (filtered) {
          exclude(rel, 'directory', filterRule!);
          continue;
        }
        throw escapeError(rel, real, 'the files');
      }
      registry.register(real, rel, job.chain);
      if (filtered) {
        exclude(rel, 'directory', filterRule!);
        continue;
      }
      if (kind === 'dir-link') {
        const linkPhys = path.join(job.real, name);
        dirLinks.push({ logical: rel, entry: linkEntry(toPosix(path.relative(root, linkPhys)), toPosix(path.relative(job.real, real)) || '.') });
      }
      await refuseUndecodableName(job.abs, name, rel);
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
      await refuseUndecodableName(job.abs, name, rel);
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

  if (sizeFiles) await sizeAll([walkedFiles, walkedIgnoreFiles], root, logicalOf, signal);
  return { excluded, walkedFiles, walkedIgnoreFiles, walkedLinks, ignoreLinks, walkedRels, routed, dirLinks };
}

/** A name as its bytes: printable ASCII as it is, every other byte as `\xNN`. */
function escapedName(raw: Buffer): string {
  let out = '';
  for (const byte of raw) out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return out;
}

/**
 * Refuse a name that is not valid UTF-8 and would be shipped or walked. Node lists such a name
 * with U+FFFD in place of the bad bytes, so the file cannot be opened by that name (ENOENT), and
 * the tar and manifest formats carry UTF-8 names. Only names holding U+FFFD are re-listed as
 * bytes, so the common case costs nothing.
 */
async function refuseUndecodableName(dirAbs: string, name: string, rel: string): Promise<void> {
  if (!name.includes('\uFFFD')) return;
  let raws: Buffer[];
  try {
    raws = await readdir(dirAbs, { encoding: 'buffer' });
  } catch (err) {
    throw ioError('list the folder', path.dirname(rel), err);
  }
  const raw = raws.find((r) => !isUtf8(r) && r.toString('utf8') === name);
  if (!raw) return;
  const shown = path.posix.join(path.posix.dirname(rel), escapedName(raw));
  throw new BundleError(
    ErrorCodes.BUNDLE_INVALID_FILENAME,
    `The name '${shown}' is not valid UTF-8, so it cannot be shipped in a DAG bundle. Rename it (for example \`mv\` with the name in quotes as the shell shows it), or exclude it in .airflowignore.`,
    shown,
  );
}

/**
 * Give the walked regular files their size. They are stat'ed synchronously, in slices that give
 * the event loop back every few milliseconds ({@link TimeSlice}): a thread-pool round trip per
 * file costs more than the lstat itself, and this runs once per file of the tree.
 */
async function sizeAll(lists: ScannedEntry[][], root: string, logicalOf: Map<ScannedEntry, string>, signal: AbortSignal | undefined): Promise<void> {
  const slice = new TimeSlice(signal);
  for (const list of lists) {
    for (const entry of list) {
      try {
        entry.size = lstatSync(absoluteIn(root, entry.path)).size;
      } catch (err) {
        throw ioError('read', logicalOf.get(entry) ?? entry.path, err);
      }
      if (slice.expired) await slice.yield();
    }
  }
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
