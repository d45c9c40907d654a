/**
 * The build context of a project: its folder as a tar stream, filtered by its `.dockerignore`
 * with Docker's own semantics (`@balena/dockerignore`, a port of Docker's matcher), walked the
 * way the Docker CLI walks it, and streamed file by file (never held whole in memory).
 *
 * Nothing in the project is written. The Astro CLI keeps `dags/` out of the image by appending a
 * `dags/` line to `.dockerignore` for the duration of the build (a crash leaves it edited); here
 * the same line is added to the patterns in memory instead (`exclude: ['dags/']`).
 *
 * What the Docker CLI does and this does too:
 * - `.dockerignore` lines: a UTF-8 BOM is dropped, `#` lines are comments, lines are trimmed,
 *   `!` negates, paths are cleaned and a leading `/` is dropped; matching is case-sensitive;
 * - `.+()|{}$` in a pattern are plain characters (the library escapes only `.` and `$`: Docker's
 *   matcher escapes all of them, so they are escaped here before the library sees them), and a
 *   pattern Docker refuses (a lone `!`, a malformed `[...]` class, a trailing `\`) is refused
 *   with `ASTRO_PROJECT_INVALID`, as `docker build` refuses it;
 * - the last matching pattern wins, and a pattern matching a parent folder excludes what is in it;
 * - an excluded folder is not descended into, unless an exception pattern (`!dir/keep`) starts
 *   with its path; then its entry is left out but what the exceptions match is sent;
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
import dockerignoreModule, { type Ignore } from '@balena/dockerignore';
import { throwIfAborted } from '../core/abort.js';
import { TimeSlice } from '../core/time-slice.js';
import { ErrorCodes, ProjectError } from '../core/errors.js';
import { DEFAULT_DOCKERFILE } from './project.js';
import { contextTar, type ContextItem } from './build-context-tar.js';

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

// The package is CommonJS with `module.exports = factory` and `factory.default = factory`: under
// NodeNext the default import is typed as the module object, so take `.default` (present at run
// time in both the ESM and the CJS build).
const dockerignore = (dockerignoreModule as unknown as { default: (options?: { ignorecase?: boolean }) => Ignore }).default;

/** Clean one pattern as Docker's `ReadAll` does: trimmed, `!` kept, path cleaned, leading `/` dropped. */
function normalizePattern(line: string): string | undefined {
  let pattern = line.trim();
  if (pattern === '') return undefined;
  const invert = pattern.startsWith('!');
  if (invert) pattern = pattern.slice(1).trim();
  if (pattern.length > 0) {
    pattern = posix.normalize(pattern);
    if (pattern.length > 1 && pattern.endsWith('/')) pattern = pattern.slice(0, -1);
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
 * The patterns of `<projectDir>/.dockerignore` (none when it does not exist).
 *
 * @throws ProjectError `ASTRO_PROJECT_INVALID` when it exists but cannot be read (a folder, no
 *   read permission): `docker build` stops on it too, and silently building without its
 *   exclusions could send what it keeps out.
 */
export async function readDockerignore(projectDir: string): Promise<string[]> {
  const text = await readFile(join(resolve(projectDir), '.dockerignore'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return '';
    throw new ProjectError(
      ErrorCodes.PROJECT_INVALID,
      `The project's .dockerignore cannot be read (${err.code ?? err.message}): make it a readable file, or remove it.`,
      '.dockerignore',
      { cause: err },
    );
  });
  return parseDockerignore(text);
}

/**
 * Why Docker would refuse `pattern` (without its `!`), or undefined: the checks of Go's
 * `filepath.Match`, which Docker's matcher runs on every pattern (malformed character classes and
 * a trailing escape).
 */
export function patternSyntaxError(pattern: string): string | undefined {
  let i = 0;
  const n = pattern.length;
  // One (possibly escaped) character of a class; `-` and `]` must be escaped there.
  const classChar = (): boolean => {
    if (i >= n || pattern[i] === '-' || pattern[i] === ']') return false;
    if (pattern[i] === '\\') {
      i++;
      if (i >= n) return false;
    }
    i++;
    return true;
  };
  while (i < n) {
    const c = pattern[i]!;
    if (c === '\\') {
      if (i + 1 >= n) return 'a trailing "\\" escapes nothing';
      i += 2;
      continue;
    }
    if (c !== '[') {
      i++;
      continue;
    }
    i++;
    if (pattern[i] === '^') i++;
    let ranges = 0;
    for (;;) {
      if (i < n && pattern[i] === ']' && ranges > 0) {
        i++;
        break;
      }
      if (!classChar()) return 'a character class ([...]) is malformed or not closed';
      if (pattern[i] === '-') {
        i++;
        if (!classChar()) return 'a character range in [...] is malformed';
      }
      ranges++;
    }
  }
  return undefined;
}

/** Escape what Docker's matcher takes literally but a JavaScript RegExp would not (`\` escapes kept as they are). */
function escapeForMatcher(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      out += c + (pattern[i + 1] ?? '');
      i++;
    } else if ('+()|{}'.includes(c)) out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** A compiled set of patterns: what is excluded, and which excluded folders must still be walked. */
export interface ContextFilter {
  /** The final patterns, in order (those of `.dockerignore`, then `exclude`, then the build-file exceptions). */
  readonly patterns: readonly string[];
  /** True when `path` (relative, `/`-separated) is left out. */
  excludes(path: string): boolean;
  /** For an excluded folder: true when an exception pattern may bring back something inside it. */
  mustDescend(dirPath: string): boolean;
}

/**
 * Compile the patterns of a context: `patterns` (from `.dockerignore`), then `exclude`, then, as
 * the Docker CLI adds them, `!.dockerignore` and `!<dockerfile>` when those two would be excluded.
 */
export function contextFilter(patterns: readonly string[], options: { dockerfile?: string; exclude?: readonly string[] } = {}): ContextFilter {
  const all = [...patterns];
  for (const line of options.exclude ?? []) {
    const p = normalizePattern(line);
    if (p !== undefined) all.push(p);
  }
  for (const p of all) {
    const body = p.startsWith('!') ? p.slice(1) : p;
    const problem = body === '' ? 'a lone "!" excludes nothing' : patternSyntaxError(body);
    if (problem) {
      throw new ProjectError(ErrorCodes.PROJECT_INVALID, `Invalid .dockerignore pattern "${p}": ${problem} (docker build refuses it too).`, '.dockerignore');
    }
  }
  const compile = (list: readonly string[]) =>
    dockerignore({ ignorecase: false }).add(list.map((p) => (p.startsWith('!') ? `!${escapeForMatcher(p.slice(1))}` : escapeForMatcher(p))));
  let matcher = compile(all);
  const dockerfile = posix.normalize((options.dockerfile ?? DEFAULT_DOCKERFILE).split('\\').join('/')).replace(/^\.\//, '');
  const extra: string[] = [];
  if (matcher.ignores('.dockerignore')) extra.push('!.dockerignore');
  if (matcher.ignores(dockerfile)) extra.push(`!${dockerfile}`);
  if (extra.length) {
    all.push(...extra);
    matcher = compile(all);
  }
  const exceptions = all.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
  return {
    patterns: all,
    excludes: (path) => matcher.ignores(path),
    // Docker's rule, verbatim: walk an excluded folder only when an exception pattern, read as
    // a path, starts with that folder's path.
    mustDescend: (dirPath) => exceptions.some((p) => `${p}/`.startsWith(`${dirPath}/`)),
  };
}

type WalkItem = ContextItem;

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
 * The context's members in sending order. Each entry is judged by the patterns before anything
 * else is asked of the file system, as Docker's walk does: an excluded entry is never `lstat`ed,
 * so one Docker would not look at (removed meanwhile, say) cannot stop the build. Folders are listed
 * and entries `lstat`ed with synchronous calls, in time slices that give the event loop a turn
 * every few milliseconds: a thread-pool round trip per entry cost more than the call, even 64 at once.
 */
async function* walk(root: string, filter: ContextFilter, stats: BuildContextStats, signal: AbortSignal | undefined): AsyncGenerator<WalkItem> {
  const slice = new TimeSlice(signal);
  async function* inDir(absDir: string | Buffer, dir: ProjectPath | undefined): AsyncGenerator<WalkItem> {
    for (const entry of sortedEntries(absDir)) {
      throwIfAborted(signal);
      if (slice.expired) await slice.yield();
      const path = childPath(dir, entry.name);
      const abs = childAbs(absDir, entry.name);
      if (filter.excludes(path.text)) {
        stats.excluded++;
        if (entry.isDirectory() && filter.mustDescend(path.text)) yield* inDir(abs, path);
        continue;
      }
      const member = memberAt(path, abs);
      if (!member) continue;
      yield member;
      if (member.type === 'dir') yield* inDir(abs, path);
    }
  }
  yield* inDir(root, undefined);
}

/** A fresh, zeroed stats record. */
function emptyStats(): BuildContextStats {
  return { files: 0, dirs: 0, symlinks: 0, contentBytes: 0, tarBytes: 0, excluded: 0 };
}

/**
 * What the build context of `projectDir` holds, in sending order, without reading any file's
 * content: for checks and dry runs.
 */
export async function listBuildContext(projectDir: string, options: BuildContextOptions = {}): Promise<BuildContextEntry[]> {
  const root = resolve(projectDir);
  const filter = contextFilter(await readDockerignore(root), options);
  const out: BuildContextEntry[] = [];
  for await (const item of walk(root, filter, emptyStats(), options.signal)) out.push({ path: item.rel, type: item.type });
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
 * @throws from the stream: `AstroAbortError` when `signal` fires; file-system errors as they are.
 */
export async function createBuildContext(projectDir: string, options: BuildContextOptions = {}): Promise<BuildContextStream> {
  const root = resolve(projectDir);
  const filter = contextFilter(await readDockerignore(root), options);
  const stats = emptyStats();
  const signal = options.signal;
  const tar = contextTar(walk(root, filter, stats, signal), stats, () => throwIfAborted(signal));
  return { stream: Readable.from(tar, { objectMode: false }), stats, patterns: filter.patterns };
}
