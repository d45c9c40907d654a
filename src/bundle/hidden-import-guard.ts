/**
 * The hidden-import guard as a phase of the scan: runs {@link findHiddenImports} over what the
 * walk and the link policy ship, then, as `hiddenImports` says, fails or ships the hidden
 * modules (with the links on their way) and reports each one.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { throwIfAborted } from '../core/abort.js';
import { BundleError, ErrorCodes } from '../core/errors.js';
import { findHiddenImports } from './hidden-imports.js';
import type { Shipped } from './scan-entry.js';
import { materialise } from './scan-links.js';
import type { LinkMembers } from './scan-links.js';
import type { BundleWarning, ExcludedPath, ScanOptions } from './types.js';

/** Python files larger than this are not read by the guard, in bytes. */
const MAX_IMPORT_SCAN_BYTES = 8 * 1024 * 1024;
/**
 * Opening never waits: a FIFO put where a module was would otherwise block the thread (the
 * fstat that follows then skips it). No effect on regular files; 0 where the platform has none.
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** The text of the regular file `abs` (UTF-8), or undefined when it is not one, is too large or cannot be read. */
function readPythonText(abs: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(abs, OPEN_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_IMPORT_SCAN_BYTES) return undefined;
    const buf = Buffer.allocUnsafe(st.size);
    let done = 0;
    while (done < st.size) {
      const n = readSync(fd, buf, done, st.size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.toString('utf8', 0, done);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function isRegularFile(abs: string): boolean {
  try {
    return statSync(abs, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

/**
 * Apply the guard to the dags folder `root`. It only runs when an ignore file or the `exclude`
 * option left something out: default excludes (and special files) never hold importable source.
 */
export async function guardHiddenImports(
  root: string,
  mode: NonNullable<ScanOptions['hiddenImports']>,
  excluded: readonly ExcludedPath[],
  shipped: Shipped,
  members: LinkMembers,
  warn: (w: BundleWarning) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (mode === 'off' || !excluded.some((e) => e.source !== 'default' && e.source !== 'special-file')) return;
  const hidden = await findHiddenImports({
    included: new Set([...shipped.walkedRels, ...shipped.added]),
    exclusionOf: (rel) => shipped.exclusionOf(rel),
    isFile: (rel) => isRegularFile(path.join(root, rel)),
    readText: (rel) => readPythonText(path.join(root, rel)),
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
    await materialise(root, h.path, members);
    shipped.keep({ path: h.path, reason: 'hidden-import', importedBy: { file: h.importedBy, line: h.line, module: h.module }, excludedBy: h.excludedBy.source });
    warn({
      code: 'HIDDEN_IMPORT_KEPT',
      message: `'${h.path}' ${h.excludedBy.reason}, but ${h.importedBy} imports it (line ${h.line}); it is shipped anyway so the import works (Airflow still does not parse it as a DAG file).`,
      file: h.importedBy,
      line: h.line,
      path: h.path,
    });
  }
  // Targets of links met while shipping hidden modules.
  for (const { target } of members.linkTargets) shipped.added.add(target);
}
