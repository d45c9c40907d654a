/**
 * Public types of `astro-deploy-sdk/bundle`.
 */
import type { Logger } from '../core/logger.js';

/**
 * `.airflowignore` syntax. `regexp`: Airflow 2's default (Python regular expressions, searched in
 * the path relative to the dags folder). `glob`: Airflow 3's default (gitignore-style wildmatch
 * with `!` negation). The deployment's `[core] dag_ignore_file_syntax` decides which one Airflow
 * uses; see `ignoreSyntaxForRuntime`.
 */
export type IgnoreSyntax = 'regexp' | 'glob';

/** Where an ignore rule came from: an `.airflowignore` file (relative path, forward slashes) and 1-based line. */
export interface RuleSource {
  file: string;
  line: number;
}

/** Stable codes of {@link BundleWarning}. */
export type BundleWarningCode =
  /** A regexp line Python's `re` rejects; Airflow skips it, and so do we. */
  | 'IGNORE_INVALID_PATTERN'
  /** A valid Python regexp we cannot run in JS; skipped, so the bundle may hold more files than Airflow parses. */
  | 'IGNORE_UNSUPPORTED_PATTERN'
  /** A line that matches nothing (a glob `/`); Airflow skips it. */
  | 'IGNORE_NOOP_PATTERN'
  /** The ignore file starts with a UTF-8 byte-order mark, which Airflow keeps as part of the first pattern. */
  | 'IGNORE_FILE_BOM'
  /** A module hidden by `.airflowignore` (or `exclude`) is imported by a shipped file, so it is shipped anyway. */
  | 'HIDDEN_IMPORT_KEPT'
  /**
   * An `.airflowignore` line leaves files out of the bundle that Airflow never parses (neither
   * `.py` nor `.zip`: SQL, templates, YAML, CSV), which the Astro CLI would ship. One warning per
   * line, with `count`; see {@link ScanOptions.ignoredNonPython}.
   */
  | 'IGNORED_NON_PYTHON_DROPPED'
  /** A shipped symlink points at a file the rules excluded; the target is shipped so the link resolves. */
  | 'SYMLINK_TARGET_KEPT'
  /** A symlink whose target does not exist; it is shipped as a (dangling) link. */
  | 'BROKEN_SYMLINK'
  /** A FIFO, socket or device file; never shipped. */
  | 'SPECIAL_FILE_SKIPPED';

/** A non-fatal finding of the scan. Every warning has a stable `code`. */
export interface BundleWarning {
  code: BundleWarningCode;
  /** What happened and what to do about it. */
  message: string;
  /** The file the warning is about (ignore file, importing module, link), relative to the dags folder. */
  file?: string;
  /** 1-based line in `file`, when the warning is about a line. */
  line?: number;
  /** The other path concerned (the hidden module, the link target, ...), relative to the dags folder. */
  path?: string;
  /** The pattern concerned, for ignore-file warnings. */
  pattern?: string;
  /** How many files the warning is about, when it stands for many (`IGNORED_NON_PYTHON_DROPPED`). */
  count?: number;
}

/** Why a path is left out of the bundle. */
export interface ExcludedPath {
  /**
   * Path relative to the dags folder, forward slashes. For a folder, nothing below it is shipped,
   * except what {@link ScanResult.kept} lists (with `ignoredNonPython: 'ship'`, the files there
   * that Airflow never parses).
   */
  path: string;
  type: 'file' | 'directory';
  /** Human-readable reason, e.g. `matched '__pycache__/' (default exclude)`. */
  reason: string;
  /** The rule that excluded it: an ignore file and line, a default exclude, or the `exclude` option. */
  source: RuleSource | 'default' | 'option' | 'special-file';
  /** The pattern that matched, when a rule excluded it. */
  pattern?: string;
}

/** A path that rules excluded but that is shipped anyway (and why). Airflow still does not parse it. */
export interface KeptPath {
  path: string;
  /**
   * `hidden-import`: a shipped module imports it; `symlink-target`: a shipped link points at it;
   * `non-python`: `.airflowignore` hides it, it is no `.py` or `.zip` file, and
   * `ignoredNonPython` is `'ship'`.
   */
  reason: 'hidden-import' | 'symlink-target' | 'non-python';
  /** For `hidden-import`: the shipped module that imports it, and the import's line. */
  importedBy?: { file: string; line: number; module: string };
  /** For `symlink-target`: the link that points at it. */
  linkedFrom?: string;
  /** What excluded it in the first place. */
  excludedBy: ExcludedPath['source'];
}

/** One member of the archive (what a reader of the extracted bundle finds on disk). */
export interface BundleEntry {
  /** Path relative to the dags folder, forward slashes (the archive name is `prefix/path`). */
  path: string;
  type: 'file' | 'symlink';
  /** Link target as stored in the archive (relative, resolving inside the bundle). */
  linkTarget?: string;
}

/** Options of `scanDags`. */
export interface ScanOptions {
  /** `.airflowignore` syntax of the target Airflow. @default 'glob' */
  syntax?: IgnoreSyntax;
  /**
   * Paths that never matter at runtime, left out of the bundle: `.git/`, `__pycache__/`, `*.pyc`
   * (gitwildmatch, like a root `.gitignore`). `false` disables them; an array replaces them.
   * A `!pattern` in {@link ScanOptions.exclude} can re-include one of them.
   * @default true
   */
  defaultExcludes?: boolean | string[];
  /** Extra gitwildmatch patterns (relative to the dags folder) to leave out of the bundle. @default [] */
  exclude?: string[];
  /**
   * What to do when a shipped Python file imports a module that `.airflowignore` (or `exclude`)
   * leaves out: `warn` ships the module anyway and reports `HIDDEN_IMPORT_KEPT`; `error` throws
   * `ASTRO_BUNDLE_HIDDEN_IMPORT`; `off` skips the check (the module stays out).
   * @default 'warn'
   */
  hiddenImports?: 'warn' | 'error' | 'off';
  /**
   * What to do with the files `.airflowignore` hides that Airflow never parses: every file but
   * `.py` files and `.zip` archives (zipped DAGs), in ignored folders or ignored by name. The Astro
   * CLI ships them (Airflow applies `.airflowignore` only when it parses), and tasks may read them
   * at run time: SQL and Jinja templates, YAML, CSV. `warn` leaves them out and reports
   * `IGNORED_NON_PYTHON_DROPPED`, one warning per `.airflowignore` line with the count; `ship`
   * ships them, as the CLI would (listed in `kept`, reason `non-python`; Airflow still ignores
   * them, and the `.py` files there stay out); `drop` leaves them out silently. `warn` and `ship`
   * list the ignored folders to find them (their own `.airflowignore` files, which Airflow never
   * reads, stay out); the default excludes and `exclude` still apply there, and `ship` applies
   * the symlink rules of the rest of the walk.
   * @default 'warn'
   */
  ignoredNonPython?: 'warn' | 'ship' | 'drop';
  /** Cancels the scan; the promise rejects with `ASTRO_ABORTED`. */
  signal?: AbortSignal;
}

/** What `scanDags` found. */
export interface ScanResult {
  /**
   * Sorted relative paths (forward slashes) of every file a reader of the extracted bundle can
   * open, `.airflowignore` files included. Files under a symlinked folder appear under the link's
   * name, as Airflow sees them. With `defaultExcludes: false` and no `exclude`, this minus the
   * `.airflowignore` files and the {@link ScanResult.kept} paths is exactly the set of files
   * Airflow's own discovery yields, but for FIFOs, sockets and devices (never shipped).
   */
  included: string[];
  /** What was left out and why, sorted by path. */
  excluded: ExcludedPath[];
  /** Paths rules excluded but shipped anyway (also listed in `included`), sorted by path. */
  kept: KeptPath[];
  /** The archive members, sorted by path: regular files and symlinks (no folder entries). */
  entries: BundleEntry[];
  warnings: BundleWarning[];
  /** The syntax used. */
  syntax: IgnoreSyntax;
  /** The dags folder, fully resolved. */
  root: string;
  /** Sum of the sizes of the regular files in `entries`, in bytes (as seen during the scan). */
  totalBytes: number;
}

/** Where `createBundle` writes the `.tar.gz`. */
export type BundleOutput =
  | {
      type: 'file';
      /** Folder for the temporary file; must not be inside the dags folder. @default os.tmpdir() */
      dir?: string;
    }
  | {
      type: 'stream';
      /** Receives the `.tar.gz` bytes; it is ended when the bundle is complete, destroyed on error. */
      stream: NodeJS.WritableStream;
    };

/** Options of `createBundle`. */
export interface CreateBundleOptions extends ScanOptions {
  /**
   * Folder that every archive member is placed under. `'dags'` matches what the Astro CLI uploads
   * for DAG deploys (the dags folder under `/usr/local/airflow`); `false` puts files at the root,
   * as Airflow 3 DAG bundles expect (`astro deploy --no-dags-base-dir`).
   * @default 'dags'
   */
  prefix?: string | false;
  /** Allow a bundle with no file other than `.airflowignore` files (deploying it removes every DAG). @default false */
  allowEmpty?: boolean;
  /** Where to write the bundle. @default { type: 'file' } (a temporary file in `os.tmpdir()`) */
  output?: BundleOutput;
  /**
   * gzip level, 0-9. The default, 3, packs DAG trees within about 1% of the size `gzip -6` (or
   * `tar -czf`) gives, with about a third less deflate CPU; 6 is `gzip`'s default.
   * @default 3
   */
  compressionLevel?: number;
  /** Minimum time between two `bundle:progress` events, in milliseconds. @default 200 */
  progressIntervalMs?: number;
  /** Receives typed progress and warning events (redacted). Exceptions thrown by it are ignored. */
  onEvent?: (event: BundleEvent) => void;
  /** Notified at debug level when `onEvent` throws (the exception is otherwise ignored). */
  logger?: Logger;
}

/** One archive member in the manifest. */
export interface BundleManifestFile {
  /** Path relative to the dags folder (the archive name is `prefix ? prefix + '/' + path : path`). */
  path: string;
  /** Content size in bytes (0 for symlinks). */
  size: number;
  /** Hex SHA-256 of the content; for a symlink, of its UTF-8 link target. */
  sha256: string;
  /** Permission bits stored in the archive: 0o644, 0o755 (executable) or 0o777 (symlink). */
  mode: number;
  type: 'file' | 'symlink';
  linkTarget?: string;
  /** Modification time stored in the archive, in whole seconds since the epoch. */
  mtimeSeconds: number;
}

/** What the bundle holds, and a fingerprint of it. */
export interface BundleManifest {
  /** Folder prefix of every archive member, or null. */
  prefix: string | null;
  syntax: IgnoreSyntax;
  /** Archive members in archive order (sorted by path). */
  files: BundleManifestFile[];
  excluded: ExcludedPath[];
  kept: KeptPath[];
  totals: {
    /** Archive members (files and symlinks). */
    files: number;
    /** Sum of file content sizes, in bytes (before compression). */
    bytes: number;
    /** Number of {@link BundleManifest.excluded} entries. */
    excluded: number;
  };
  /**
   * Hex SHA-256 over the sorted archive names, modes, types and content hashes. It does not change
   * when only modification times change, so two bundles with the same fingerprint deploy the same code.
   */
  fingerprint: string;
}

/** What `createBundle` produced. */
export interface BundleResult {
  /** The temporary `.tar.gz` when the output is a file. */
  path?: string;
  /**
   * The dags folder it was made from, fully resolved (where `git: 'auto'` looks for the
   * repository when the bundle is deployed). Its `.airflowignore` syntax is `manifest.syntax`.
   */
  root: string;
  /** Size of the `.tar.gz`, in bytes. */
  bytes: number;
  /** Hex SHA-256 of the `.tar.gz` bytes. */
  sha256: string;
  manifest: BundleManifest;
  warnings: BundleWarning[];
  /** Removes the temporary file (and its folder). Safe to call more than once; a no-op for streams. */
  cleanup(): Promise<void>;
}

/** The scan finished; packing starts. */
export interface BundleScanCompleteEvent {
  type: 'bundle:scan-complete';
  /** Archive members to pack. */
  totalFiles: number;
  /**
   * Content bytes to pack. Absent from `createBundle`'s events: files are sized as they are
   * packed, not by the scan (a stat per file, ~10% of the bundling time of a tree of small
   * files). The content size is in the last `bundle:progress` event and in `bundle:complete`
   * (`contentBytes`).
   * @deprecated Always absent; use {@link BundleCompleteEvent.contentBytes}.
   */
  totalBytes?: number;
  excluded: number;
  kept: number;
  warnings: number;
  durationMs: number;
}

/**
 * Packing progress (throttled by `progressIntervalMs`; the last one has `files === totalFiles`).
 * Use `files / totalFiles` for a fraction done: the content size is only known once every file
 * has been packed.
 */
export interface BundleProgressEvent {
  type: 'bundle:progress';
  files: number;
  totalFiles: number;
  /** Content bytes packed so far. */
  bytes: number;
  /** Content bytes of all members: only on the last event (`files === totalFiles`), where it equals `bytes`. */
  totalBytes?: number;
}

/** A non-fatal finding, emitted as soon as it is known (also returned in `warnings`). */
export interface BundleWarningEvent {
  type: 'bundle:warning';
  warning: BundleWarning;
}

/** The bundle is complete. */
export interface BundleCompleteEvent {
  type: 'bundle:complete';
  path?: string;
  /** Size of the `.tar.gz`, in bytes. */
  bytes: number;
  /** Content bytes packed (sum of the members' sizes, as `manifest.totals.bytes`). */
  contentBytes: number;
  sha256: string;
  fingerprint: string;
  files: number;
  durationMs: number;
}

/** Events of `createBundle`, discriminated by `type`. */
export type BundleEvent = BundleScanCompleteEvent | BundleProgressEvent | BundleWarningEvent | BundleCompleteEvent;
