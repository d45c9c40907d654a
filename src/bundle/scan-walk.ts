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
 *
 * What `.airflowignore` hides that Airflow would never parse (no `.py` or `.zip` file) is then
 * shipped or counted, as `ignoredNonPython` says: once Airflow's walk is done, the folders it
 * pruned are walked too, with the bundle filters only.
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
import { classifyAll, escapeError, FolderRegistry, leaveOutHidden, resolveFolderLink } from './scan-links.js';
import type { FolderLink, Kind, LinkFile } from './scan-links.js';
import type { BundleWarning, ExcludedPath, IgnoreSyntax, KeptPath, RuleSource, ScanOptions } from './types.js';

/** Name of the ignore file Airflow reads in every walked folder. */
export const IGNORE_FILE = '.airflowignore';

/** What becomes of the files `.airflowignore` hides that Airflow never parses ({@link ScanOptions.ignoredNonPython}). */
export type IgnoredNonPython = NonNullable<ScanOptions['ignoredNonPython']>;

/**
 * Whether Airflow's DAG processor may parse a file of this name: a Python file, or a zip archive
 * (zipped DAGs). Airflow tests `.py` case-sensitively, and zip archives by their content; a zip
 * named otherwise (a wheel, a spreadsheet) counts as data here, which is harmless: what
 * `.airflowignore` hides, Airflow never parses, shipped or not.
 */
export function mayHoldDags(name: string): boolean {
  return name.endsWith('.py') || name.toLowerCase().endsWith('.zip');
}

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
  /** Walked files (logical paths) that `.airflowignore` hides, shipped with `ignoredNonPython: 'ship'`. */
  keptNonPython: KeptPath[];
}

/** An `.airflowignore` rule hiding a folder or file, walked for what Airflow never parses there. */
interface Hidden {
  rule: IgnoreRule;
  /** The pruned folder, or the file itself. */
  at: string;
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
  /** Set in a folder `.airflowignore` pruned: Airflow never walks it. */
  hidden?: Hidden;
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

/** How {@link walkTree} walks, beyond the rules. */
export interface WalkSettings {
  /**
   * lstat every walked regular file for its size; without, the records keep size 0 and the walk
   * costs no system call per file (the packer sizes each file when it opens it).
   */
  sizeFiles: boolean;
  ignoredNonPython: IgnoredNonPython;
}

/**
 * Walk the dags folder `root` (resolved) with the ignore `syntax` and the bundle `filters`, then,
 * unless `ignoredNonPython` is `drop`, the folders `.airflowignore` pruned: with `ship`, their
 * files that Airflow never parses are walked files like the others (and the symlink rules
 * apply); with `warn`, they are only counted, per rule, and nothing there is an error.
 */
export async function walkTree(
  root: string,
  syntax: IgnoreSyntax,
  filters: GlobRule[],
  signal: AbortSignal | undefined,
  warn: (w: BundleWarning) => void,
  settings: WalkSettings = { sizeFiles: true, ignoredNonPython: 'warn' },
): Promise<Walk> {
  const mode = settings.ignoredNonPython;
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
  const keptNonPython: KeptPath[] = [];
  const registry = new FolderRegistry();
  const stack: DirJob[] = [{ rel: '', abs: root, real: root, physRel: '', rules: [], chain: [root] }];
  /** Folders `.airflowignore` pruned, in walk order, entered once Airflow's walk is done. */
  const pruned: Array<{ parent: DirJob; name: string; kind: 'dir' | 'dir-link'; hidden: Hidden }> = [];
  let nextPruned = 0;
  /** With `warn`: the hidden files each rule leaves out, and where (pruned folders, or the files). */
  const tallies = new Map<IgnoreRule, { count: number; at: Set<string> }>();
  /** With `warn`: resolved folders counted (the registry holds those Airflow walks). */
  const counted = new Set<string>();

  const exclude = (rel: string, type: ExcludedPath['type'], rule: IgnoreRule | GlobRule) => {
    excluded.push({ path: rel, type, reason: describe(rule.source, rule.pattern), source: rule.source, pattern: rule.pattern });
  };
  const tally = (hidden: Hidden) => {
    let t = tallies.get(hidden.rule);
    if (t === undefined) tallies.set(hidden.rule, (t = { count: 0, at: new Set() }));
    t.count++;
    t.at.add(hidden.at);
  };

  /**
   * The job for the sub-folder `name` of `parent` (a folder or a folder link), or undefined when
   * it is not walked: the bundle filters, an escape from the dags folder, a second route to a
   * walked folder. When it only counts (`warn`, in a hidden folder), what would be an error is
   * skipped instead.
   */
  const enter = async (parent: DirJob, name: string, kind: 'dir' | 'dir-link', hidden: Hidden | undefined): Promise<DirJob | undefined> => {
    const rel = join(parent.rel, name);
    const counting = hidden !== undefined && mode !== 'ship';
    const filterRule = decidingRule(filters, rel, true);
    const filtered = ruleIgnores(filterRule);
    // Airflow walks a folder the bundle filters leave out (its ignore files, the registry); nothing
    // walks a hidden one.
    if (hidden !== undefined && filtered) {
      if (!counting && hidden.at !== rel) exclude(rel, 'directory', filterRule!);
      return undefined;
    }
    if (counting && name.includes('\uFFFD')) return undefined;
    let real: string;
    if (kind === 'dir') real = path.join(parent.real, name);
    else if (counting) {
      const resolved = await resolveFolderLink(path.join(parent.abs, name), rel).catch(() => undefined);
      if (resolved === undefined) return undefined;
      real = resolved;
    } else real = await resolveFolderLink(path.join(parent.abs, name), rel);
    if (!isInside(root, real)) {
      if (filtered) {
        exclude(rel, 'directory', filterRule!);
        return undefined;
      }
      if (counting) return undefined;
      throw escapeError(rel, real, 'the files', hidden?.at);
    }
    if (counting) {
      if (registry.has(real) || counted.has(real)) return undefined;
      counted.add(real);
    } else {
      registry.register(real, rel, parent.chain, hidden?.at);
    }
    if (filtered) {
      exclude(rel, 'directory', filterRule!);
      return undefined;
    }
    if (kind === 'dir-link' && !counting) {
      const linkPhys = path.join(parent.real, name);
      dirLinks.push({ logical: rel, entry: linkEntry(toPosix(path.relative(root, linkPhys)), toPosix(path.relative(parent.real, real)) || '.') });
    }
    if (!counting) await refuseUndecodableName(parent.abs, name, rel, hidden?.at);
    const physRel = kind === 'dir' ? joinFlat(parent.physRel, name) : toPosix(path.relative(root, real));
    return { rel, abs: path.join(parent.abs, name), real, physRel, rules: parent.rules, chain: [...parent.chain, real], ...(hidden ? { hidden } : {}) };
  };

  for (;;) {
    throwIfAborted(signal);
    let job = stack.pop();
    if (job === undefined) {
      // Airflow's walk is done: the pruned folders, one after the other.
      const next = pruned[nextPruned++];
      if (next === undefined) break;
      job = await enter(next.parent, next.name, next.kind, next.hidden);
      if (job === undefined) continue;
    }
    const hidden = job.hidden;
    const countingHere = hidden !== undefined && mode !== 'ship';
    let dirents: Dirent[];
    try {
      dirents = await readdir(job.abs, { withFileTypes: true });
    } catch (err) {
      if (countingHere) continue;
      throw ioError('list the folder', job.rel || '.', err);
    }
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const kinds = await classifyAll(dirents, job.abs);
    const routedDir = job.rel !== job.physRel;

    // 1. This folder's own ignore file extends the inherited rules (Airflow never reads one in a
    //    pruned folder).
    let rules = job.rules;
    const ignoreAt = hidden ? -1 : dirents.findIndex((d, i) => d.name === IGNORE_FILE && (kinds[i] === 'file' || kinds[i] === 'file-link'));
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
    const here = rules === job.rules ? job : { ...job, rules };
    const subJobs: DirJob[] = [];
    for (let i = 0; i < dirents.length; i++) {
      const kind = kinds[i]!;
      if (kind !== 'dir' && kind !== 'dir-link') continue;
      const name = dirents[i]!.name;
      if (!hidden) {
        const rel = join(job.rel, name);
        const airflowRule = decidingRule(rules, rel, true);
        if (ruleIgnores(airflowRule)) {
          exclude(rel, 'directory', airflowRule!);
          if (mode !== 'drop') pruned.push({ parent: here, name, kind, hidden: { rule: airflowRule!, at: rel } });
          continue;
        }
      }
      const sub = await enter(here, name, kind, hidden);
      if (sub) subJobs.push(sub);
    }
    for (let i = subJobs.length - 1; i >= 0; i--) stack.push(subJobs[i]!);

    // 3. Files.
    for (let i = 0; i < dirents.length; i++) {
      const kind = kinds[i]!;
      const name = dirents[i]!.name;
      // A pruned folder's own ignore file is never read, by Airflow or by a task: it stays out.
      if (kind === 'dir' || kind === 'dir-link' || name === IGNORE_FILE) continue;
      const rel = joinFlat(job.rel, name);
      let hiddenBy = hidden;
      if (hidden) {
        if (mayHoldDags(name)) continue;
      } else {
        const airflowRule = decidingRule(rules, rel, false);
        if (ruleIgnores(airflowRule)) {
          exclude(rel, 'file', airflowRule!);
          if (mode === 'drop' || mayHoldDags(name)) continue;
          hiddenBy = { rule: airflowRule!, at: rel };
        }
      }
      const counting = hiddenBy !== undefined && mode !== 'ship';
      const filterRule = decidingRule(filters, rel, false);
      if (ruleIgnores(filterRule)) {
        // A file `.airflowignore` hides by name is already listed as excluded.
        if (hiddenBy === undefined || (hidden !== undefined && !counting)) exclude(rel, 'file', filterRule!);
        continue;
      }
      if (counting) {
        if (!isShippable(kind, name)) continue;
        tally(hiddenBy!);
        continue;
      }
      if (kind === 'loop-link') {
        throw new BundleError(
          ErrorCodes.BUNDLE_SYMLINK_LOOP,
          `The symlink '${rel}' never resolves (it is part of a symlink loop). Remove it or ${hiddenBy ? leaveOutHidden(hiddenBy.at) : 'ignore it in .airflowignore'}.`,
          rel,
        );
      }
      if (kind === 'special') {
        excluded.push({ path: rel, type: 'file', reason: 'not a regular file or symlink (FIFO, socket or device)', source: 'special-file' });
        warn({ code: 'SPECIAL_FILE_SKIPPED', message: `'${rel}' is a FIFO, socket or device file; it is not shipped.`, file: rel });
        continue;
      }
      await refuseUndecodableName(job.abs, name, rel, hiddenBy?.at);
      walkedRels.push(rel);
      const physRel = routedDir ? joinFlat(job.physRel, name) : rel;
      if (routedDir) routed.push({ rel, physRel });
      if (kind === 'file') {
        const entry = fileEntry(physRel);
        walkedFiles.push(entry);
        if (routedDir) logicalOf.set(entry, rel);
      } else {
        walkedLinks.push({ rel, kind, physDir: job.real, name, ...(hiddenBy ? { hiddenAt: hiddenBy.at } : {}) });
      }
      if (hiddenBy) keptNonPython.push({ path: rel, reason: 'non-python', excludedBy: hiddenBy.rule.source });
    }
  }

  for (const [rule, { count, at }] of tallies) warn(droppedWarning(rule, count, [...at]));
  if (settings.sizeFiles) await sizeAll([walkedFiles, walkedIgnoreFiles], root, logicalOf, signal);
  return { excluded, walkedFiles, walkedIgnoreFiles, walkedLinks, ignoreLinks, walkedRels, routed, dirLinks, keptNonPython };
}

/** A hidden entry that `ship` would ship, as far as its name and kind tell (counted by `warn`). */
function isShippable(kind: Kind, name: string): boolean {
  return kind !== 'loop-link' && kind !== 'special' && !name.includes('\uFFFD');
}

/** The `IGNORED_NON_PYTHON_DROPPED` warning of one `.airflowignore` rule. */
function droppedWarning(rule: IgnoreRule, count: number, at: string[]): BundleWarning {
  const source = rule.source as RuleSource;
  const shown = at.slice(0, 3).map((p) => `'${p}'`).join(', ') + (at.length > 3 ? ` and ${at.length - 3} more` : '');
  const files = count === 1 ? 'file' : 'files';
  return {
    code: 'IGNORED_NON_PYTHON_DROPPED',
    message:
      `'${rule.pattern}' in ${source.file}:${source.line} leaves ${count.toLocaleString('en-US')} ${files} out of the bundle that Airflow never parses (no .py or .zip ${files}), in ${shown}. ` +
      `The Astro CLI ships them, and tasks may read them at run time (SQL or Jinja templates, YAML, CSV): set ignoredNonPython: 'ship' to ship them (Airflow still ignores them), or 'drop' to leave them out without this warning.`,
    file: source.file,
    line: source.line,
    pattern: rule.pattern,
    path: at[0]!,
    count,
  };
}

/** A name as its bytes: printable ASCII as it is, every other byte as `\xNN`. */
function escapedName(raw: Buffer): string {
  let out = '';
  for (const byte of raw) out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return out;
}

/**
 * Refuse a name that is not valid UTF-8 and would be shipped or walked (`hiddenAt`: where
 * `.airflowignore` hides it, when `ignoredNonPython: 'ship'` walks it). Node lists such a name
 * with U+FFFD in place of the bad bytes, so the file cannot be opened by that name (ENOENT), and
 * the tar and manifest formats carry UTF-8 names. Only names holding U+FFFD are re-listed as
 * bytes, so the common case costs nothing.
 */
async function refuseUndecodableName(dirAbs: string, name: string, rel: string, hiddenAt?: string): Promise<void> {
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
    `The name '${shown}' is not valid UTF-8, so it cannot be shipped in a DAG bundle. Rename it (for example \`mv\` with the name in quotes as the shell shows it), or ${hiddenAt === undefined ? 'exclude it in .airflowignore' : leaveOutHidden(hiddenAt)}.`,
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
