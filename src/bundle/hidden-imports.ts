/**
 * The hidden-import guard: a common `.airflowignore` idiom hides helper modules from the DAG
 * parser (`helpers/`, `common_*.py`) while DAG files still import them. Airflow only uses the
 * ignore file to decide what to PARSE; if the bundle also leaves those modules out, every DAG
 * that imports them breaks after the deploy. This finds such modules so they can be shipped.
 *
 * Imports are resolved the way Airflow's DAG processor makes them work: the dags folder (bundle
 * root) is on `sys.path`, so `import a.b` means `a/__init__.py` and `a/b.py` or `a/b/__init__.py`
 * under it; relative imports resolve against the importing module's package folder.
 */
import { throwIfAborted } from '../core/abort.js';
import { TimeSlice } from '../core/time-slice.js';
import { extractImports } from './python-imports.js';
import type { ExcludedPath } from './types.js';

/** A module that rules excluded but that a shipped file imports. */
export interface HiddenImport {
  /** The hidden module file, relative to the dags folder. */
  path: string;
  /** The shipped file that imports it. */
  importedBy: string;
  /** 1-based line of the import statement. */
  line: number;
  /** The module name as written (with leading dots for relative imports). */
  module: string;
  /** What excluded it. */
  excludedBy: ExcludedPath;
}

/** What the guard needs from the scan. */
export interface HiddenImportContext {
  /** Paths that will be shipped (logical, relative to the dags folder). */
  included: ReadonlySet<string>;
  /** The exclusion covering `rel` (itself or its nearest excluded folder), if any. */
  exclusionOf(rel: string): ExcludedPath | undefined;
  /** True when `rel` exists as a regular file (following symlinks). */
  isFile(rel: string): boolean;
  /**
   * Text of a shipped Python file, or undefined to skip it (too large, unreadable). Synchronous:
   * the guard reads every shipped module, mostly small files, and a thread-pool round trip per
   * open, stat, read and close cost several times the reads themselves (10,000 DAG files: ~2 s
   * through the promise API). The loop gives the event loop a turn every few milliseconds.
   */
  readText(rel: string): string | undefined;
  /** Checked between slices of the work: the guard stops with `ASTRO_ABORTED` once it fired. */
  signal?: AbortSignal;
}

/** Candidate module files for one import statement, in the order Python would look at them. */
export function candidateFiles(importer: string, imp: { module: string; level: number; names: string[] }): string[] {
  let baseParts: string[];
  if (imp.level > 0) {
    const dirParts = importer.split('/').slice(0, -1);
    if (imp.level - 1 > dirParts.length) return [];
    baseParts = dirParts.slice(0, dirParts.length - (imp.level - 1));
  } else {
    baseParts = [];
  }
  const modParts = imp.module === '' ? [] : imp.module.split('.');
  const out: string[] = [];
  const add = (parts: string[]) => {
    if (parts.length === 0) return;
    const p = parts.join('/');
    out.push(`${p}/__init__.py`, `${p}.py`);
  };
  // Every package on the way is imported too (its __init__.py runs).
  for (let i = imp.level > 0 ? 0 : 1; i <= modParts.length; i++) add([...baseParts, ...modParts.slice(0, i)]);
  // `from pkg import name` may name a submodule.
  for (const name of imp.names) add([...baseParts, ...modParts, name]);
  return [...new Set(out)];
}

/**
 * Find every excluded module a shipped Python file imports, transitively (a kept module's own
 * imports are followed too). Only exclusions by an ignore file or the `exclude` option count:
 * default excludes (`*.pyc`, `__pycache__/`, `.git/`) never hold importable source.
 */
export async function findHiddenImports(ctx: HiddenImportContext): Promise<HiddenImport[]> {
  const found: HiddenImport[] = [];
  const shipped = new Set(ctx.included);
  const queue = [...ctx.included].filter((p) => p.endsWith('.py')).sort();
  // Many DAGs import the same packages: each candidate that is not a file is looked at once.
  const notFiles = new Set<string>();
  const isFile = (rel: string) => {
    if (notFiles.has(rel)) return false;
    if (ctx.isFile(rel)) return true;
    notFiles.add(rel);
    return false;
  };
  const slice = new TimeSlice(ctx.signal);
  throwIfAborted(ctx.signal);
  for (let at = 0; at < queue.length; at++) {
    if (slice.expired) await slice.yield();
    const file = queue[at]!;
    const text = ctx.readText(file);
    if (text === undefined) continue;
    for (const imp of extractImports(text)) {
      for (const candidate of candidateFiles(file, imp)) {
        if (shipped.has(candidate)) continue;
        const exclusion = ctx.exclusionOf(candidate);
        if (!exclusion || exclusion.source === 'default' || exclusion.source === 'special-file') continue;
        if (!isFile(candidate)) continue;
        shipped.add(candidate);
        queue.push(candidate);
        found.push({
          path: candidate,
          importedBy: file,
          line: imp.line,
          module: `${'.'.repeat(imp.level)}${imp.module}${imp.module === '' && imp.names.length > 0 ? imp.names.join(',') : ''}`,
          excludedBy: exclusion,
        });
      }
    }
  }
  return found;
}
