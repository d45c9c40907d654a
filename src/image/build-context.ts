/**
 * The build context of a project: its folder as a tar stream, filtered by its `.dockerignore`
 * with Docker's own semantics, walked the way the Docker CLI walks it, and streamed file by file
 * (never held whole in memory).
 *
 * Nothing in the project is written. The Astro CLI keeps `dags/` out of the image by appending a
 * `dags/` line to `.dockerignore` for the duration of the build (a crash leaves it edited); here
 * the same line is added to the patterns in memory instead (`exclude: ['dags/']`).
 *
 * What the Docker CLI does and this does too (a port of moby/patternmatcher and of the walk of
 * `TarWithOptions` in moby's archive package, with which the CLI tars the context):
 * - `.dockerignore` lines: a UTF-8 BOM is dropped, `#` lines are comments, lines are trimmed (of
 *   what Go's TrimSpace trims), `!` negates, paths are cleaned and a leading `/` is dropped;
 *   matching is case-sensitive;
 * - a pattern becomes a Go regular expression (`*` any run of characters but `/`, `?` one of them,
 *   `**` any number of folders, `[...]` a Go class, `[[:upper:]]` included; `\` keeps the next
 *   character escaped, so `\d` is a digit), matched here by the JavaScript expression that matches
 *   the same paths, on whole characters;
 * - a pattern is refused with `ASTRO_PROJECT_INVALID` when Docker refuses it: as it reads the
 *   patterns, a lone `!`, or a `[...]` class or trailing `\` that Go's `filepath.Match` reads
 *   malformed while matching `.` (it stops reading at the first part that cannot match, so
 *   `!a*[b` passes and `!a[b` does not); and a pattern whose expression Go's regexp parser
 *   refuses (`\q`, `[b-a]`, the `[` of `a*[b`) only if a path reaches it, since Docker compiles a
 *   pattern when a path first reaches it (one none reaches is never compiled, and `docker build`
 *   goes on); one that only the walk tarring the context reaches (it judges a path by its
 *   folder's results, and enters excluded folders an exception opens), where Docker sends the
 *   context cut short without an error, is refused too;
 * - the walk judges a folder before what it holds and hands each pattern's result down: a pattern
 *   that matched the folder matches all inside it, the last matching pattern wins, and a pattern
 *   that could not change the result so far is not tried (so `!sp` after an exclusion of every
 *   `.txt` does not bring back `sp/h.txt`: it matches only the folder, which was not excluded);
 * - an excluded folder is not descended into, unless an exception pattern (`!dir/keep`) starts
 *   with its path; then its entry is left out but what the exceptions match is sent;
 * - `<dockerfile>.dockerignore` (`Dockerfile.dockerignore`), when it exists, is read instead of
 *   `.dockerignore`, as `docker build` with BuildKit (the default since Docker 23) reads it;
 * - the Dockerfile and `.dockerignore` are always sent, even when excluded (the classic builder
 *   then drops them from what `COPY` sees, as for `docker build`);
 * - members are owned by root (uid and gid 0); modes and modification times are kept; symbolic
 *   links are sent as links; sockets and devices are left out;
 * - names and link targets are sent as the bytes they are on disk, UTF-8 or not; the patterns
 *   read a byte that is not UTF-8 as U+FFFD, as Go's regular expressions do.
 */
import { isUtf8 } from 'node:buffer';
import { lstatSync, readdirSync, type Dirent } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { throwIfAborted } from '../core/abort.js';
import { TimeSlice } from '../core/time-slice.js';
import { ErrorCodes, ProjectError } from '../core/errors.js';
import { DEFAULT_DOCKERFILE } from './project.js';
import { contextTar, type ContextItem } from './build-context-tar.js';
import { compileGoRegexp, GoRegexpError, goMatchDotError } from './go-match.js';

/** Options of the build-context functions. */
export interface BuildContextOptions {
  /** The Dockerfile, relative to the project (always sent). @default 'Dockerfile' */
  dockerfile?: string;
  /**
   * Patterns added after those of `.dockerignore`, in the same syntax, as if they were its last
   * lines (so they win over its exceptions). `['dags/']` keeps the DAGs out of the image.
   */
  exclude?: string[];
  /** Stops the walk (the stream is destroyed with `AstroAbortError`). */
  signal?: AbortSignal;
}

/** What a build context held. */
export interface BuildContextStats {
  /** Regular files sent. */
  files: number;
  /** Folders sent. */
  dirs: number;
  /** Symbolic links sent (as links). */
  symlinks: number;
  /** Bytes of file content sent (headers and padding not counted). */
  contentBytes: number;
  /** Bytes of the tar stream, headers and padding included. */
  tarBytes: number;
  /** Files and folders left out by the patterns (a folder not descended into counts once). */
  excluded: number;
}

/** One member of a build context, in the order it is sent. */
export interface BuildContextEntry {
  /** Path relative to the project, `/`-separated; a byte that is not UTF-8 reads as U+FFFD. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
}

const BOM = '\ufeff';

/** What Go's `strings.TrimSpace` trims: Unicode White_Space (`String#trim` also trims U+FEFF, and not U+0085). */
const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const GO_SPACE_AT_ENDS = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');

function goTrimSpace(text: string): string {
  return text.replace(GO_SPACE_AT_ENDS, '');
}

/** Go's `filepath.Clean` on Linux: Node's normalize without the trailing `/` it keeps. */
function goClean(path: string): string {
  const clean = posix.normalize(path);
  return clean.length > 1 && clean.endsWith('/') ? clean.slice(0, -1) : clean;
}

/** Clean one line as Docker's `ReadAll` does: trimmed, `!` kept, path cleaned, leading `/` dropped. */
function normalizePattern(line: string): string | undefined {
  let pattern = goTrimSpace(line);
  if (pattern === '') return undefined;
  const invert = pattern.startsWith('!');
  if (invert) pattern = goTrimSpace(pattern.slice(1));
  if (pattern.length > 0) {
    pattern = goClean(pattern);
    if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
  }
  return invert ? `!${pattern}` : pattern;
}

/**
 * The patterns of a `.dockerignore` text, as Docker reads them (see the module comment).
 * Comments and blank lines are dropped.
 */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  if (lines[0]?.startsWith(BOM)) lines[0] = lines[0].slice(BOM.length);
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const pattern = normalizePattern(line);
    if (pattern !== undefined) out.push(pattern);
  }
  return out;
}

/**
 * The patterns of the project's ignore file (none when there is none): `<dockerfile>.dockerignore`
 * when `dockerfile` is given and that file exists (as `docker build` with BuildKit, the default
 * since Docker 23, picks it over the other), else `<projectDir>/.dockerignore`.
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` when it exists but cannot be read (a folder, no
 *   read permission): `docker build` stops on it too, and silently building without its
 *   exclusions could send what it keeps out.
 */
export async function readDockerignore(projectDir: string, dockerfile?: string): Promise<string[]> {
  const root = resolve(projectDir);
  const candidates = [...(dockerfile ? [`${dockerfile.replace(/^\.\//, '')}.dockerignore`] : []), '.dockerignore'];
  for (const name of candidates) {
    const text = await readFile(join(root, name), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw new ProjectError(
        ErrorCodes.PROJECT_INVALID,
        `The project's ${name} cannot be read (${err.code ?? err.message}): make it a readable file, or remove it.`,
        name,
        { cause: err },
      );
    });
    if (text !== undefined) return parseDockerignore(text);
  }
  return [];
}

// ---------------------------------------------------------------------------------------------
// Docker's patterns (moby/patternmatcher).
// ---------------------------------------------------------------------------------------------

/** How a pattern is matched, which Docker decides from its text. */
type MatchKind = 'exact' | 'prefix' | 'suffix' | 'regexp';

/** Characters special to a regexp but not to a pattern: Docker escapes them. */
const REGEXP_ONLY_SPECIALS = '.+()|{}$';

/**
 * Docker's translation of a pattern into a Go regexp: `*` any run of characters but `/`, `?` one
 * of them, `**` any number of folders, `\` keeps the next character with its backslash (Go then
 * reads the pair as a regexp escape: `\d` is a digit). Without any of those the pattern is tested
 * for equality; a `**` in front or at the end with nothing special elsewhere, as a suffix or
 * prefix. Go's text scanner, which reads the pattern, skips a byte order mark at its start.
 */
function translatePattern(pattern: string): { kind: MatchKind; source: string } {
  const chars = Array.from(pattern);
  let at = chars[0] === BOM ? 1 : 0;
  let source = '^';
  let kind: MatchKind = 'exact';
  for (let step = 0; at < chars.length; step++) {
    const char = chars[at++]!;
    if (char === '*' && chars[at] === '*') {
      at++;
      if (chars[at] === '/') at++;
      if (at < chars.length) {
        source += '(.*/)?';
        kind = 'regexp';
      } else if (kind === 'exact') kind = 'prefix';
      else {
        source += '.*';
        kind = 'regexp';
      }
      if (step === 0) kind = 'suffix';
    } else if (char === '*' || char === '?') {
      source += char === '*' ? '[^/]*' : '[^/]';
      kind = 'regexp';
    } else if (REGEXP_ONLY_SPECIALS.includes(char)) {
      source += `\\${char}`;
    } else if (char === '\\' && at < chars.length) {
      source += `\\${chars[at++]!}`;
      kind = 'regexp';
    } else {
      source += char;
      if (char === '[' || char === ']') kind = 'regexp';
    }
  }
  return { kind, source: kind === 'regexp' ? `${source}$` : source };
}

/**
 * Why Docker refuses `pattern` (without its `!`), or undefined. Docker checks at two times: as it
 * reads the patterns, with Go's `filepath.Match(pattern, ".")` (a `[...]` class or a trailing
 * `\` that Go reads malformed; Go reads only what that match needs, see go-match.ts), and
 * `docker build` always fails then; and when a path first reaches the pattern, with Go's regexp
 * parser on what the pattern becomes (an escape Go does not know, such as `\q`, a range such as
 * `[b-a]`, a class `filepath.Match` did not read), and `docker build` fails only if a path does.
 */
export function patternSyntaxError(pattern: string): string | undefined {
  return goMatchDotError(pattern) ?? patternRegexp(pattern).broken;
}

/** What `pattern` becomes: how it is matched, and its expression, or why Go refuses that. */
function patternRegexp(pattern: string): { kind: MatchKind; regexp?: RegExp; broken?: string } {
  const { kind, source } = translatePattern(pattern);
  if (kind !== 'regexp') return { kind };
  try {
    return { kind, regexp: compileGoRegexp(source) };
  } catch (err) {
    if (!(err instanceof GoRegexpError)) throw err;
    return { kind, broken: `what it becomes is not a valid Go regular expression (${err.message})` };
  }
}

/** One compiled pattern. */
interface CompiledPattern {
  /** The line it was compiled from. */
  readonly line: string;
  /** As Docker cleans it, without its `!`. */
  readonly text: string;
  /** True for an exception (`!`). */
  readonly exclusion: boolean;
  readonly kind: MatchKind;
  /** Undefined when `kind` is not `regexp`, or when Go refuses the expression (then `broken` says why). */
  readonly regexp: RegExp | undefined;
  /** Why Go's regexp parser refuses what the pattern becomes: Docker fails when a path reaches it, not before. */
  readonly broken: string | undefined;
}

/**
 * `line` (from `.dockerignore`, `exclude` or the build-file exceptions) compiled as Docker's
 * matcher compiles it, trimmed and cleaned once more; undefined for a blank one.
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` for a pattern Docker refuses as it reads the
 *   patterns. One whose regular expression Go refuses is compiled as `broken`: Docker compiles
 *   that expression when a path first reaches the pattern, and fails only then (see
 *   {@link refuseReachedBrokenPatterns}).
 */
function compilePattern(line: string): CompiledPattern | undefined {
  const trimmed = goTrimSpace(line);
  if (trimmed === '') return undefined;
  const cleaned = goClean(trimmed);
  const exclusion = cleaned.startsWith('!');
  const text = exclusion ? cleaned.slice(1) : cleaned;
  const problem = text === '' ? 'a lone "!" excludes nothing' : goMatchDotError(text);
  if (problem) throw new ProjectError(ErrorCodes.PROJECT_INVALID, `Invalid .dockerignore pattern "${line}": ${problem} (docker build refuses it too).`, '.dockerignore');
  const { kind, regexp, broken } = patternRegexp(text);
  return { line, text, exclusion, kind, regexp, broken };
}

/** Thrown where a path reaches a pattern whose expression Go refuses; {@link refusingBrokenPatterns} makes it the refusal. */
class BrokenPatternReached extends Error {
  constructor(
    readonly pattern: CompiledPattern,
    readonly path: string,
  ) {
    super(`"${path}" reaches the pattern "${pattern.line}"`);
  }
}

/**
 * `run`, a path reaching a pattern whose expression Go refuses made `ASTRO_PROJECT_INVALID`:
 * reached by a path that Docker's check walk looks at (`check`), `docker build` fails; reached
 * only in the walk that tars the context (`tar`), Docker stops sending the context there.
 */
function refusingBrokenPatterns<T>(walk: 'check' | 'tar', run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof BrokenPatternReached)) throw err;
    const docker =
      walk === 'check'
        ? `docker build refuses it once a path reaches it, as "${err.path}" does`
        : `docker build would send the context cut short at "${err.path}", which reaches it, without an error`;
    throw new ProjectError(ErrorCodes.PROJECT_INVALID, `Invalid .dockerignore pattern "${err.pattern.line}": ${err.pattern.broken} (${docker}).`, '.dockerignore');
  }
}

/**
 * A path in the project as the patterns see it. Linux names are bytes and Go reads them as
 * such; its regular expressions read a byte that is not UTF-8 as U+FFFD, so `text` does too, and
 * `bytes` keeps the real name for the file system and the tar whenever `text` does not spell it.
 */
interface ProjectPath {
  text: string;
  bytes?: Buffer;
}

const SLASH = Buffer.from('/');

// Docker compares a path with a pattern's text as bytes (Go strings); so does this when the
// path's text is not its bytes.

function pathIs(path: ProjectPath, text: string): boolean {
  return path.bytes ? path.bytes.equals(Buffer.from(text)) : path.text === text;
}

function pathStartsWith(path: ProjectPath, prefix: string): boolean {
  if (!path.bytes) return path.text.startsWith(prefix);
  const bytes = Buffer.from(prefix);
  return path.bytes.subarray(0, bytes.length).equals(bytes);
}

function pathEndsWith(path: ProjectPath, suffix: string): boolean {
  if (!path.bytes) return path.text.endsWith(suffix);
  const bytes = Buffer.from(suffix);
  return path.bytes.length >= bytes.length && path.bytes.subarray(path.bytes.length - bytes.length).equals(bytes);
}

/** Whether `text` starts with the folder's path and a `/`. */
function startsWithFolder(text: string, folder: ProjectPath): boolean {
  if (!folder.bytes) return text.startsWith(`${folder.text}/`);
  const prefix = Buffer.concat([folder.bytes, SLASH]);
  return Buffer.from(text).subarray(0, prefix.length).equals(prefix);
}

/** Whether `pattern` matches `path` itself. */
function patternMatches(pattern: CompiledPattern, path: ProjectPath): boolean {
  switch (pattern.kind) {
    case 'exact':
      return pathIs(path, pattern.text);
    case 'prefix':
      return pathStartsWith(path, pattern.text.slice(0, -2));
    case 'suffix': {
      // `**/foo` also matches `foo` itself.
      const suffix = pattern.text.slice(2);
      return pathEndsWith(path, suffix) || (suffix.startsWith('/') && pathIs(path, suffix.slice(1)));
    }
    case 'regexp':
      if (!pattern.regexp) throw new BrokenPatternReached(pattern, path.text);
      return pattern.regexp.test(path.text);
  }
}

/** The folders a `/`-separated path is in, outermost first. */
function parentFolders(path: string): string[] {
  const names = path.split('/').slice(0, -1);
  return names.map((_, i) => names.slice(0, i + 1).join('/'));
}

/** Each pattern's result for a folder, handed down to what the folder holds. */
type PatternResults = readonly boolean[];

/** What the patterns decided for one path, and the results its contents start from. */
interface Judgement {
  excluded: boolean;
  results: PatternResults;
}

/** Compiled patterns, and the two ways Docker applies them. */
class PatternSet {
  private readonly hasExceptions: boolean;
  /** Whether a pattern's expression is one Go refuses (Docker fails if a path reaches it). */
  readonly hasBroken: boolean;

  constructor(private readonly patterns: readonly CompiledPattern[]) {
    this.hasExceptions = patterns.some((p) => p.exclusion);
    this.hasBroken = patterns.some((p) => p.broken !== undefined);
  }

  /**
   * The judgement of Docker's walk on `path`, given its folder's results (undefined at the top):
   * in order, a pattern that matched the folder matches the path; any other is tried only if it
   * could change the result so far (an exclusion while the path is included, an exception while
   * it is excluded), and when it is not tried, nothing is recorded for what the path holds.
   */
  judge(path: ProjectPath, folder: PatternResults | undefined): Judgement {
    let excluded = false;
    const results = this.patterns.map(() => false);
    for (const [i, pattern] of this.patterns.entries()) {
      let match = folder?.[i] ?? false;
      if (!match) {
        if (pattern.exclusion !== excluded) continue;
        match = patternMatches(pattern, path) || (folder === undefined && this.matchesAParentFolder(pattern, path.text));
      }
      results[i] = match;
      if (match) excluded = !pattern.exclusion;
    }
    return { excluded, results };
  }

  /** Whether `path` is left out when Docker's walk reaches it, each folder on the way judged first. */
  excludedAlongWalk(path: string): boolean {
    let judgement: Judgement | undefined;
    for (const folder of [...parentFolders(path), path]) judgement = this.judge({ text: folder }, judgement?.results);
    return judgement?.excluded ?? false;
  }

  /**
   * Whether `path`, looked at alone, is excluded: each pattern that could change the result so
   * far is tried on the path and on each of its folders (Docker's `MatchesOrParentMatches`).
   *
   * @throws BrokenPatternReached when the path reaches a pattern whose expression Go refuses
   */
  excludesAlone(path: string): boolean {
    let excluded = false;
    for (const pattern of this.patterns) {
      if (pattern.exclusion !== excluded) continue;
      if (patternMatches(pattern, { text: path }) || this.matchesAParentFolder(pattern, path)) excluded = !pattern.exclusion;
    }
    return excluded;
  }

  /**
   * For an excluded folder: whether Docker walks into it anyway, because an exception pattern
   * starts with the folder's path (read as text: `!docs/*` opens `docs`, not `docs/x`).
   */
  mayReincludeUnder(folder: ProjectPath): boolean {
    return this.hasExceptions && this.patterns.some((p) => p.exclusion && startsWithFolder(`${p.text}/`, folder));
  }

  private matchesAParentFolder(pattern: CompiledPattern, path: string): boolean {
    return parentFolders(path).some((folder) => patternMatches(pattern, { text: folder }));
  }
}

function compilePatterns(lines: readonly string[]): PatternSet {
  return new PatternSet(lines.map(compilePattern).filter((p): p is CompiledPattern => p !== undefined));
}

/**
 * A build file (the Dockerfile, `.dockerignore`) looked at alone, as the Docker CLI and the
 * classic builder look at it: a pattern whose expression Go refuses, when reached, makes their
 * check fail, which they read as "not excluded".
 */
function excludesBuildFile(set: PatternSet, path: string): boolean {
  try {
    return set.excludesAlone(path);
  } catch (err) {
    if (err instanceof BrokenPatternReached) return false;
    throw err;
  }
}

/**
 * Whether `patterns` (lines of a `.dockerignore`) exclude `path` looked at alone: each pattern is
 * tried on the path and on each of its folders (Docker's `MatchesOrParentMatches`). The Docker CLI
 * decides so whether the Dockerfile and `.dockerignore` need exceptions, and the classic builder
 * whether to drop them from what `COPY` sees; the walk decides otherwise (see `contextFilter`).
 */
export function dockerignoreExcludes(path: string, patterns: readonly string[]): boolean {
  return excludesBuildFile(compilePatterns(patterns), path);
}

/** The patterns of a context: as lines, and compiled. */
interface ContextPatterns {
  lines: string[];
  set: PatternSet;
}

/**
 * The patterns of a context: `patterns` (from `.dockerignore`), then `exclude`, then, as the
 * Docker CLI adds them, `!.dockerignore` and `!<dockerfile>` when those two would be excluded.
 */
function contextPatterns(patterns: readonly string[], options: { dockerfile?: string; exclude?: readonly string[] }): ContextPatterns {
  const lines = [...patterns];
  for (const line of options.exclude ?? []) {
    const p = normalizePattern(line);
    if (p !== undefined) lines.push(p);
  }
  let set = compilePatterns(lines);
  const dockerfile = posix.normalize((options.dockerfile ?? DEFAULT_DOCKERFILE).split('\\').join('/')).replace(/^\.\//, '');
  for (const buildFile of ['.dockerignore', dockerfile]) {
    if (!excludesBuildFile(set, buildFile)) continue;
    lines.push(`!${buildFile}`);
    set = compilePatterns(lines);
  }
  return { lines, set };
}

/** A compiled set of patterns: what is excluded, and which excluded folders must still be walked. */
export interface ContextFilter {
  /** The final patterns, in order (those of `.dockerignore`, then `exclude`, then the build-file exceptions). */
  readonly patterns: readonly string[];
  /**
   * True when `path` (relative, `/`-separated) is left out, as Docker's walk decides it: each
   * folder on the way is judged first and hands its results down (see the module comment).
   * Throws `ASTRO_PROJECT_INVALID` when the path reaches a pattern whose expression Go refuses
   * (`\q`, `[b-a]`), as `docker build` fails then.
   */
  excludes(path: string): boolean;
  /** For an excluded folder: true when an exception pattern may bring back something inside it. */
  mustDescend(dirPath: string): boolean;
}

/**
 * Compile the patterns of a context: `patterns` (from `.dockerignore`), then `exclude`, then, as
 * the Docker CLI adds them, `!.dockerignore` and `!<dockerfile>` when those two would be excluded.
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` for a pattern `docker build` refuses as it reads
 *   the patterns (see {@link patternSyntaxError}); one it refuses only once a path reaches it is
 *   refused by `excludes`, for such a path
 */
export function contextFilter(patterns: readonly string[], options: { dockerfile?: string; exclude?: readonly string[] } = {}): ContextFilter {
  const { lines, set } = contextPatterns(patterns, options);
  return {
    patterns: lines,
    excludes: (path) => refusingBrokenPatterns('check', () => set.excludedAlongWalk(path)),
    mustDescend: (dirPath) => set.mayReincludeUnder({ text: dirPath }),
  };
}

type WalkItem = ContextItem;

/** The length of the UTF-8 sequence a lead byte starts, 0 for a byte that cannot start one. */
function utf8SequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** Bytes as Go's UTF-8 decoding reads them: each byte that does not start a valid sequence is one U+FFFD. */
function goText(bytes: Buffer): string {
  let text = '';
  for (let i = 0; i < bytes.length; ) {
    const width = utf8SequenceLength(bytes[i]!);
    const sequence = bytes.subarray(i, i + width);
    if (width > 0 && sequence.length === width && isUtf8(sequence)) {
      text += sequence.toString('utf8');
      i += width;
    } else {
      text += '\ufffd';
      i++;
    }
  }
  return text;
}

/** The path of `name` (bytes, as read from the folder) inside `parent` (undefined at the root). */
function childPath(parent: ProjectPath | undefined, name: Buffer): ProjectPath {
  const exact = isUtf8(name);
  const nameText = exact ? name.toString('utf8') : goText(name);
  const text = parent ? `${parent.text}/${nameText}` : nameText;
  if (exact && !parent?.bytes) return { text };
  return { text, bytes: parent ? Buffer.concat([parent.bytes ?? Buffer.from(parent.text), SLASH, name]) : name };
}

/** The absolute path of `name` in `absDir`: text while the text names the file, else bytes. */
function childAbs(absDir: string | Buffer, name: Buffer): string | Buffer {
  if (typeof absDir === 'string' && isUtf8(name)) return join(absDir, name.toString('utf8'));
  return Buffer.concat([Buffer.from(absDir), SLASH, name]);
}

/** A folder's entries in byte order of their names, as Go's walk sorts them. */
function sortedEntries(absDir: string | Buffer): Dirent<Buffer>[] {
  return readdirSync(absDir, { withFileTypes: true, encoding: 'buffer' }).sort((a, b) => Buffer.compare(a.name, b.name));
}

/** The member for a path that is sent, from its `lstat`; undefined for sockets, FIFOs and devices (not part of a build context). */
function memberAt(path: ProjectPath, abs: string | Buffer): WalkItem | undefined {
  const st = lstatSync(abs);
  const base = { rel: path.text, ...(path.bytes ? { relBytes: path.bytes } : {}), abs, size: 0, mode: st.mode, mtime: st.mtimeMs / 1000 };
  if (st.isDirectory()) return { ...base, type: 'dir' };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink' };
  if (st.isFile()) return { ...base, type: 'file', size: st.size };
  return undefined;
}

/**
 * When a pattern's expression is one Go refuses (`\q`, `[b-a]`), refuses the context if
 * `docker build` would reach that pattern. The Docker CLI first walks the context to check it
 * (`ValidateContextDirectory`: each path looked at alone, an excluded folder not entered) and
 * fails on the first path that reaches such a pattern; a pattern no path reaches is never
 * compiled, and the build goes on without it. A path that reaches it only in the walk that tars
 * the context (which judges a path by its folder's results, so `!x\q` after `sp/h.txt` and
 * `!sp` is reached at `sp/h.txt`, and enters excluded folders an exception opens) makes Docker
 * stop that walk and send what it had so far, without an error: that is refused here too,
 * rather than sending part of the project. Both walks list folders only, and only when such a
 * pattern exists.
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` naming the pattern and the first path reaching it
 */
function refuseReachedBrokenPatterns(root: string, patterns: PatternSet, signal: AbortSignal | undefined): void {
  if (!patterns.hasBroken) return;
  const check = (absDir: string | Buffer, dir: ProjectPath | undefined): void => {
    throwIfAborted(signal);
    for (const entry of sortedEntries(absDir)) {
      const path = childPath(dir, entry.name);
      if (!patterns.excludesAlone(path.text) && entry.isDirectory()) check(childAbs(absDir, entry.name), path);
    }
  };
  const tarWalk = (absDir: string | Buffer, dir: ProjectPath | undefined, dirResults: PatternResults | undefined): void => {
    throwIfAborted(signal);
    for (const entry of sortedEntries(absDir)) {
      const path = childPath(dir, entry.name);
      const { excluded, results } = patterns.judge(path, dirResults);
      if (entry.isDirectory() && (!excluded || patterns.mayReincludeUnder(path))) tarWalk(childAbs(absDir, entry.name), path, results);
    }
  };
  refusingBrokenPatterns('check', () => check(root, undefined));
  refusingBrokenPatterns('tar', () => tarWalk(root, undefined, undefined));
}

/**
 * The context's members in sending order. Each entry is judged by the patterns before anything
 * else is asked of the file system, as Docker's walk does: an excluded entry is never `lstat`ed,
 * so one Docker would not look at (removed meanwhile, say) cannot stop the build. Folders are listed
 * and entries `lstat`ed with synchronous calls, in time slices that give the event loop a turn
 * every few milliseconds: a thread-pool round trip per entry cost more than the call, even 64 at once.
 */
async function* walk(root: string, patterns: PatternSet, stats: BuildContextStats, signal: AbortSignal | undefined): AsyncGenerator<WalkItem> {
  const slice = new TimeSlice(signal);
  async function* inDir(absDir: string | Buffer, dir: ProjectPath | undefined, dirResults: PatternResults | undefined): AsyncGenerator<WalkItem> {
    for (const entry of sortedEntries(absDir)) {
      throwIfAborted(signal);
      if (slice.expired) await slice.yield();
      const path = childPath(dir, entry.name);
      const abs = childAbs(absDir, entry.name);
      const { excluded, results } = refusingBrokenPatterns('tar', () => patterns.judge(path, dirResults));
      if (excluded) {
        stats.excluded++;
        if (entry.isDirectory() && patterns.mayReincludeUnder(path)) yield* inDir(abs, path, results);
        continue;
      }
      const member = memberAt(path, abs);
      if (!member) continue;
      yield member;
      if (member.type === 'dir') yield* inDir(abs, path, results);
    }
  }
  yield* inDir(root, undefined, undefined);
}

/** A fresh, zeroed stats record. */
function emptyStats(): BuildContextStats {
  return { files: 0, dirs: 0, symlinks: 0, contentBytes: 0, tarBytes: 0, excluded: 0 };
}

/**
 * What the build context of `projectDir` holds, in sending order, without reading any file's
 * content: for checks and dry runs.
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` for patterns `docker build` refuses (see the module comment)
 */
export async function listBuildContext(projectDir: string, options: BuildContextOptions = {}): Promise<BuildContextEntry[]> {
  const root = resolve(projectDir);
  const { set } = contextPatterns(await readDockerignore(root, options.dockerfile ?? DEFAULT_DOCKERFILE), options);
  refuseReachedBrokenPatterns(root, set, options.signal);
  const out: BuildContextEntry[] = [];
  for await (const item of walk(root, set, emptyStats(), options.signal)) out.push({ path: item.rel, type: item.type });
  return out;
}

/** A build context being streamed: the tar bytes, and what was sent so far (final once `stream` ended). */
export interface BuildContextStream {
  /** The tar stream; pipe it to the daemon. Destroying it stops the walk. */
  stream: Readable;
  /** Updated as the stream is read; complete when it has ended. */
  stats: BuildContextStats;
  /** The patterns applied, in order. */
  patterns: readonly string[];
}

/**
 * Stream the build context of `projectDir` as a tar (see the module comment). The walk advances
 * as the consumer reads: a slow daemon holds at most the read-ahead window (64 small files, 8 MiB)
 * and a few chunks in memory (see `build-context-tar.ts`).
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` for patterns `docker build` refuses (see the module
 *   comment), before anything is streamed
 * @throws from the stream: `AstroAbortError` when `signal` fires; file-system errors as they are.
 */
export async function createBuildContext(projectDir: string, options: BuildContextOptions = {}): Promise<BuildContextStream> {
  const root = resolve(projectDir);
  const { lines, set } = contextPatterns(await readDockerignore(root, options.dockerfile ?? DEFAULT_DOCKERFILE), options);
  refuseReachedBrokenPatterns(root, set, options.signal);
  const stats = emptyStats();
  const signal = options.signal;
  const tar = contextTar(walk(root, set, stats, signal), stats, () => throwIfAborted(signal));
  return { stream: Readable.from(tar, { objectMode: false }), stats, patterns: lines };
}
