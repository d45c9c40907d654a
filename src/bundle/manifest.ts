/**
 * The bundle fingerprint: identity of the deployed code, independent of modification times.
 */
import { createHash } from 'node:crypto';
import type { BundleManifestFile } from './types.js';

const line = (f: BundleManifestFile, prefix: string | null) => `${f.type}\0${prefix ? `${prefix}/${f.path}` : f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`;

/**
 * True when the sorted lines of `files` are its files of type `file` in order, then its symlinks
 * in order: paths strictly increasing (one member per path) and free of NUL. A line starts with
 * the type, then the shared prefix and the path followed by NUL, which sorts below any path
 * character, so within a type the lines sort as the paths do.
 */
function linesInTypeThenPathOrder(files: readonly BundleManifestFile[]): boolean {
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    if ((f.type !== 'file' && f.type !== 'symlink') || f.path.includes('\0')) return false;
    if (i > 0 && !(files[i - 1]!.path < f.path)) return false;
  }
  return true;
}

/**
 * Hex SHA-256 over one line per member, sorted by archive name:
 * `<type> NUL <archive name> NUL <octal mode> NUL <content sha256> LF` (for a symlink the
 * "content" is its link target). Modification times are deliberately left out.
 */
export function fingerprint(files: readonly BundleManifestFile[], prefix: string | null): string {
  const hash = createHash('sha256');
  if (linesInTypeThenPathOrder(files)) {
    // A manifest is sorted by path: hash the lines in sorted order without materialising and
    // sorting all of them (~150 bytes a member, at the moment the bundle's memory peaks).
    for (const type of ['file', 'symlink'] as const) {
      for (const f of files) if (f.type === type) hash.update(line(f, prefix), 'utf8');
    }
    return hash.digest('hex');
  }
  const lines = files.map((f) => line(f, prefix)).sort();
  for (const l of lines) hash.update(l, 'utf8');
  return hash.digest('hex');
}
