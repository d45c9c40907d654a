/**
 * The bundle fingerprint: identity of the deployed code, independent of modification times.
 */
import { createHash } from 'node:crypto';
import type { BundleManifestFile } from './types.js';

/**
 * Hex SHA-256 over one line per member, sorted by archive name:
 * `<type> NUL <archive name> NUL <octal mode> NUL <content sha256> LF` (for a symlink the
 * "content" is its link target). Modification times are deliberately left out.
 */
export function fingerprint(files: readonly BundleManifestFile[], prefix: string | null): string {
  const lines = files.map((f) => `${f.type}\0${prefix ? `${prefix}/${f.path}` : f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`).sort();
  const hash = createHash('sha256');
  for (const line of lines) hash.update(line, 'utf8');
  return hash.digest('hex');
}
