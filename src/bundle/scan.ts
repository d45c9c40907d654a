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
import type { BundleEntry, BundleWarning, ExcludedPath, IgnoreSyntax, KeptPath, RuleSource, ScanOptions, ScanResult } from './types.js';

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

/** An archive member with what the packer needs to read it. */
export interface ScannedEntry extends BundleEntry {
  /** Absolute path to read the content from (regular files). */
  abs: string;
  /** Size seen by the scan, in bytes (0 for links). */
  size: number;
  /** `st_mode` seen by the scan. */
  mode: number;
}

/** {@link ScanResult} plus the packer's view of the entries. */
export interface ScanOutcome extends ScanResult {
  scannedEntries: ScannedEntry[];
}

interface DirJob {
  rel: string;
  abs: string;
  real: string;
  rules: IgnoreRule[];
  /** Resolved paths of this folder and its ancestors on the walked route. */
  chain: string[];
}

type Kind = 'dir' | 'file' | 'file-link' | 'dir-link' | 'broken-link' | 'loop-link' | 'special';

interface Classified {
  name: string;
  kind: Kind;
  abs: string;
}

interface IncludedFile {
  rel: string;
  kind: 'file' | 'file-link' | 'broken-link';
  abs: string;
  /** Resolved folder holding it. */
  physDir: string;
  name: string;
}

const toPosix = (p: string) => (path.sep === '/' ? p : p.split(path.sep).join('/'));
const join = (a: string, b: string) => (a === '' ? b : `${a}/${b}`);
const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

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
  const includedFiles: IncludedFile[] = [];
  const ignoreFiles: IncludedFile[] = [];
  const dirLinks: Array<{ logical: string; entry: ScannedEntry }> = [];
  const registered = new Map<string, string>();
  const stack: DirJob[] = [{ rel: '', abs: root, real: root, rules: [], chain: [root] }];

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
    const items = await Promise.all(dirents.map((d) => classify(d, job.abs)));

    // 1. This folder's own ignore file extends the inherited rules.
    let rules = job.rules;
    const ignoreItem = items.find((it) => it.name === IGNORE_FILE && (it.kind === 'file' || it.kind === 'file-link'));
    if (ignoreItem) {
      const file = join(job.rel, IGNORE_FILE);
      rules = [...job.rules, ...(await readRules(ignoreItem.abs, file, job.rel, syntax, warn))];
      ignoreFiles.push({ rel: file, kind: ignoreItem.kind as 'file' | 'file-link', abs: ignoreItem.abs, physDir: job.real, name: IGNORE_FILE });
    }

    // 2. Sub-folders: prune, then register (loop / second-route detection), then queue.
    const subJobs: DirJob[] = [];
    for (const it of items) {
      if (it.kind !== 'dir' && it.kind !== 'dir-link') continue;
      const rel = join(job.rel, it.name);
      const airflowRule = decidingRule(rules, rel, true);
      if (ruleIgnores(airflowRule)) {
        exclude(rel, 'directory', airflowRule!);
        continue;
      }
      const real = it.kind === 'dir' ? path.join(job.real, it.name) : await realpath(it.abs).catch((err: unknown) => {
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
      if (it.kind === 'dir-link') {
        const linkPhys = path.join(job.real, it.name);
        dirLinks.push({
          logical: rel,
          entry: { path: toPosix(path.relative(root, linkPhys)), type: 'symlink', linkTarget: toPosix(path.relative(job.real, real)) || '.', abs: linkPhys, size: 0, mode: 0o120777 },
        });
      }
      subJobs.push({ rel, abs: path.join(job.abs, it.name), real, rules: [...rules], chain: [...job.chain, real] });
    }
    for (let i = subJobs.length - 1; i >= 0; i--) stack.push(subJobs[i]!);

    // 3. Files.
    for (const it of items) {
      if (it.kind === 'dir' || it.kind === 'dir-link' || it.name === IGNORE_FILE) continue;
      const rel = join(job.rel, it.name);
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
      if (it.kind === 'loop-link') {
        throw new BundleError(
          ErrorCodes.BUNDLE_SYMLINK_LOOP,
          `The symlink '${rel}' never resolves (it is part of a symlink loop). Remove it or ignore it in .airflowignore.`,
          rel,
        );
      }
      if (it.kind === 'special') {
        excluded.push({ path: rel, type: 'file', reason: 'not a regular file or symlink (FIFO, socket or device)', source: 'special-file' });
        warn({ code: 'SPECIAL_FILE_SKIPPED', message: `'${rel}' is a FIFO, socket or device file; it is not shipped.`, file: rel });
        continue;
      }
      includedFiles.push({ rel, kind: it.kind, abs: it.abs, physDir: job.real, name: it.name });
    }
  }

  // Archive members for the walked files (physical paths, links rewritten to relative targets).
  const entries = new Map<string, ScannedEntry>();
  const included = new Set<string>();
  const linkTargets: Array<{ link: string; target: string }> = [];
  // Regular files (nearly all of a tree) are stat'ed synchronously, in slices that give the event
  // loop back every few milliseconds: a thread-pool round trip per file costs more than the
  // lstat itself (see tar-writer.ts for the figures), and this runs once per file of the tree.
  let sliceStart = performance.now();
  for (const f of [...includedFiles, ...ignoreFiles]) {
    if (f.kind !== 'file') continue;
    const physAbs = path.join(f.physDir, f.name);
    const physRel = toPosix(path.relative(root, physAbs));
    let st: Stats;
    try {
      st = lstatSync(physAbs);
    } catch (err) {
      throw ioError('read', f.rel, err);
    }
    entries.set(physRel, { path: physRel, type: 'file', abs: physAbs, size: st.size, mode: st.mode });
    if (performance.now() - sliceStart >= 4) {
      await setImmediate();
      throwIfAborted(signal);
      sliceStart = performance.now();
    }
  }
  const addFileEntries = async (files: IncludedFile[]) => {
    await mapLimit(files.filter((f) => f.kind !== 'file'), 16, async (f) => {
      const physAbs = path.join(f.physDir, f.name);
      const physRel = toPosix(path.relative(root, physAbs));
      if (f.kind === 'broken-link') {
        const text = await readlink(physAbs).catch((err: unknown) => {
          throw ioError('read the symlink', f.rel, err);
        });
        const lexical = path.resolve(f.physDir, text);
        if (!isInside(root, lexical)) throw escapeError(f.rel, lexical);
        const target = toPosix(path.relative(f.physDir, lexical));
        entries.set(physRel, { path: physRel, type: 'symlink', linkTarget: target, abs: physAbs, size: 0, mode: 0o120777 });
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
      entries.set(physRel, { path: physRel, type: 'symlink', linkTarget: toPosix(path.relative(f.physDir, real)), abs: physAbs, size: 0, mode: 0o120777 });
      entries.set(targetRel, { path: targetRel, type: 'file', abs: real, size: st.size, mode: st.mode });
      linkTargets.push({ link: f.rel, target: targetRel });
    });
  };
  await addFileEntries(includedFiles);
  await addFileEntries(ignoreFiles);
  for (const f of includedFiles) included.add(f.rel);
  for (const f of ignoreFiles) included.add(f.rel);
  throwIfAborted(signal);

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
    if (included.has(target)) continue;
    const by = exclusionOf(target);
    included.add(target);
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
  for (const f of includedFiles) {
    const physRel = toPosix(path.relative(root, path.join(f.physDir, f.name)));
    if (physRel === f.rel || included.has(physRel)) continue;
    included.add(physRel);
    const by = exclusionOf(physRel);
    const viaLink = dirLinks.filter((d) => f.rel.startsWith(`${d.logical}/`)).pop()?.logical ?? f.rel;
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
      included,
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
      await materialise(root, h.path, entries, linkTargets);
      included.add(h.path);
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
    for (const { target } of linkTargets) included.add(target);
  }

  // Symlinked folders are shipped as links when anything below them is shipped.
  const includedList = [...included].sort();
  for (const { logical, entry } of dirLinks) {
    const prefix = `${logical}/`;
    if (hasPrefix(includedList, prefix)) entries.set(entry.path, entry);
  }

  const keptPaths = new Set(kept.map((k) => k.path));
  const finalExcluded = excluded.filter((e) => !(e.type === 'file' && keptPaths.has(e.path))).sort(byPath);
  const scannedEntries = [...entries.values()].sort(byPath);
  return {
    included: includedList,
    excluded: finalExcluded,
    kept: kept.sort(byPath),
    entries: scannedEntries.map(({ path: p, type, linkTarget }) => (linkTarget === undefined ? { path: p, type } : { path: p, type, linkTarget })),
    warnings,
    syntax,
    root,
    totalBytes: scannedEntries.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0),
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
  const { scannedEntries: _internal, ...result } = await scanTree(dir, options);
  return result;
}

async function classify(d: Dirent, parentAbs: string): Promise<Classified> {
  const abs = path.join(parentAbs, d.name);
  if (d.isDirectory()) return { name: d.name, kind: 'dir', abs };
  if (d.isFile()) return { name: d.name, kind: 'file', abs };
  if (d.isSymbolicLink()) {
    let st: Stats;
    try {
      st = await stat(abs);
    } catch (err) {
      return { name: d.name, kind: (err as NodeJS.ErrnoException).code === 'ELOOP' ? 'loop-link' : 'broken-link', abs };
    }
    return { name: d.name, kind: st.isDirectory() ? 'dir-link' : st.isFile() ? 'file-link' : 'special', abs };
  }
  return { name: d.name, kind: 'special', abs };
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
        entries.set(physRel, { path: physRel, type: 'file', abs: candidate, size: st.size, mode: st.mode });
      }
      cur = candidate;
      continue;
    }
    const real = await realpath(candidate).catch((err: unknown) => {
      throw ioError('resolve the symlink', rel, err);
    });
    if (!isInside(root, real)) throw escapeError(toPosix(path.relative(root, candidate)), real);
    const linkRel = toPosix(path.relative(root, candidate));
    entries.set(linkRel, { path: linkRel, type: 'symlink', linkTarget: toPosix(path.relative(cur, real)) || '.', abs: candidate, size: 0, mode: 0o120777 });
    if (i === parts.length - 1) {
      const tst = await lstat(real);
      const targetRel = toPosix(path.relative(root, real));
      entries.set(targetRel, { path: targetRel, type: 'file', abs: real, size: tst.size, mode: tst.mode });
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
