/**
 * What the phases of the scan share: the archive-member record they build, the paths it is keyed
 * by (relative to the dags folder, forward slashes), the I/O error they report, and the set of
 * shipped paths that the phases after the walk add to.
 */
import path from 'node:path';
import { BundleError, ErrorCodes } from '../core/errors.js';
import type { BundleManifestFile, ExcludedPath, KeptPath } from './types.js';

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

/** A regular file's record before packing. */
export function fileEntry(physRel: string, size = 0): ScannedEntry {
  return { path: physRel, size, sha256: '', mode: 0, type: 'file', mtimeSeconds: 0 };
}

/** A symlink's record before packing. */
export function linkEntry(physRel: string, linkTarget: string): ScannedEntry {
  return { path: physRel, size: 0, sha256: '', mode: 0, type: 'symlink', linkTarget, mtimeSeconds: 0 };
}

/** The absolute path of `rel` (forward slashes, inside the dags folder `root`), built when it is needed. */
export function absoluteIn(root: string, rel: string): string {
  const native = path.sep === '/' ? rel : rel.split('/').join(path.sep);
  return root.endsWith(path.sep) ? root + native : root + path.sep + native;
}

export const toPosix = (p: string) => (path.sep === '/' ? p : p.split(path.sep).join('/'));
export const join = (a: string, b: string) => (a === '' ? b : `${a}/${b}`);
/**
 * {@link join} for the paths kept once per file: `Array.prototype.join` gives a flat string,
 * where `+` and template literals give a rope (an extra object per file, which V8 flattens into
 * a new string anyway as soon as the path is sorted or matched).
 */
export const joinFlat = (a: string, b: string) => (a === '' ? b : [a, b].join('/'));
export const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

export function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export function ioError(what: string, p: string, err: unknown): BundleError {
  const code = (err as NodeJS.ErrnoException)?.code;
  return new BundleError(
    ErrorCodes.BUNDLE_IO,
    `Could not ${what} '${p}'${code ? ` (${code})` : ''}. Check that it exists and is readable.`,
    p,
    { cause: err },
  );
}

/**
 * The logical paths the bundle ships: the walked ones, plus those the link policy and the
 * hidden-import guard add, each with why in {@link Shipped.kept}.
 */
export class Shipped {
  /** Added after the walk (link targets, files under symlinked folders, hidden modules); may repeat walked paths. */
  readonly added = new Set<string>();
  readonly kept: KeptPath[] = [];
  private walkedSet: Set<string> | undefined;
  private readonly excludedByPath: Map<string, ExcludedPath>;

  /** `walkedRels`: the walked paths (distinct). */
  constructor(
    readonly walkedRels: string[],
    excluded: readonly ExcludedPath[],
  ) {
    this.excludedByPath = new Map(excluded.map((e) => [e.path, e]));
  }

  /** Whether the walk shipped `rel`. The set is only built when a phase needs a lookup: most trees have no links. */
  isWalked(rel: string): boolean {
    return (this.walkedSet ??= new Set(this.walkedRels)).has(rel);
  }

  isIncluded(rel: string): boolean {
    return this.added.has(rel) || this.isWalked(rel);
  }

  /** The exclusion covering `rel`: the path itself or its nearest excluded folder. */
  exclusionOf(rel: string): ExcludedPath | undefined {
    for (let p = rel; p !== ''; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') {
      const e = this.excludedByPath.get(p);
      if (e) return e;
    }
    return undefined;
  }

  /** Ship `k.path` although the rules left it out. */
  keep(k: KeptPath): void {
    this.added.add(k.path);
    this.kept.push(k);
  }
}
