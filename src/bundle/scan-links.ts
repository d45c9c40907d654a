/**
 * The scan's symlink policy: links must resolve inside the dags folder and are shipped as links
 * (stored relative), their targets are shipped too, and a folder reached a second time (a symlink
 * loop, or two routes to one folder) is an error, as in Airflow. Links are rare: nothing here
 * costs a system call per regular file.
 */
import { lstat, readlink, realpath, stat } from 'node:fs/promises';
import type { Dirent, Stats } from 'node:fs';
import path from 'node:path';
import { BundleError, ErrorCodes } from '../core/errors.js';
import { fileEntry, ioError, isInside, linkEntry, toPosix } from './scan-entry.js';
import type { ScannedEntry, Shipped } from './scan-entry.js';
import type { BundleWarning } from './types.js';

/** What a folder entry is, links resolved. */
export type Kind = 'dir' | 'file' | 'file-link' | 'dir-link' | 'broken-link' | 'loop-link' | 'special';

/** A file link or dangling link met by the walk (rare: regular files get a {@link ScannedEntry} at once). */
export interface LinkFile {
  rel: string;
  kind: 'file-link' | 'broken-link';
  /** Resolved folder holding it. */
  physDir: string;
  name: string;
  /** Set when `.airflowignore` hides it (at this path or a folder above) and it ships as a non-Python file. */
  hiddenAt?: string;
}

/** A symlinked folder the walk descended into, and its archive member. */
export interface FolderLink {
  logical: string;
  entry: ScannedEntry;
}

/**
 * Archive members beyond the walked regular files, keyed by path (links, link targets, hidden
 * modules): a later entry for the same path replaces an earlier one, and one for a walked file's
 * path (the same file) replaces it.
 */
export interface LinkMembers {
  extra: Map<string, ScannedEntry>;
  /** Shipped file links (logical path) and their targets (physical path). */
  linkTargets: Array<{ link: string; target: string }>;
}

/**
 * The kind of each (sorted) folder entry. Only symlinks cost a system call (to tell a file link
 * from a folder link, a dangling link or a loop); they are resolved concurrently.
 */
export async function classifyAll(dirents: Dirent[], parentAbs: string): Promise<Kind[]> {
  const kinds: Kind[] = [];
  const links: Array<Promise<void>> = [];
  for (let i = 0; i < dirents.length; i++) {
    const d = dirents[i]!;
    if (d.isDirectory()) kinds.push('dir');
    else if (d.isFile()) kinds.push('file');
    else if (d.isSymbolicLink()) {
      kinds.push('special');
      links.push(linkKind(path.join(parentAbs, d.name)).then((kind) => void (kinds[i] = kind)));
    } else kinds.push('special');
  }
  if (links.length > 0) await Promise.all(links);
  return kinds;
}

async function linkKind(abs: string): Promise<Kind> {
  let st: Stats;
  try {
    st = await stat(abs);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ELOOP' ? 'loop-link' : 'broken-link';
  }
  return st.isDirectory() ? 'dir-link' : st.isFile() ? 'file-link' : 'special';
}

/** Where the folder link at `abs` (logical path `rel`) leads. */
export async function resolveFolderLink(abs: string, rel: string): Promise<string> {
  return await realpath(abs).catch((err: unknown) => {
    throw ioError('resolve the symlink', rel, err);
  });
}

/**
 * How to leave out a path that `.airflowignore` already hides from Airflow (at `hiddenAt`, the
 * path or a folder above it) but that `ignoredNonPython: 'ship'` walks: with `exclude`.
 */
export function leaveOutHidden(hiddenAt: string): string {
  return `leave it out with the exclude option (.airflowignore hides '${hiddenAt}' from Airflow, and ignoredNonPython: 'ship' ships what is there that Airflow never parses)`;
}

/**
 * A link leading outside the dags folder; `copy` names what to copy in instead, `hiddenAt` is set
 * for a link that `.airflowignore` hides (see {@link leaveOutHidden}).
 */
export function escapeError(rel: string, target: string, copy: 'the file' | 'the files' = 'the file', hiddenAt?: string): BundleError {
  return new BundleError(
    ErrorCodes.BUNDLE_SYMLINK_ESCAPE,
    `The symlink '${rel}' points to '${target}', outside the dags folder. Only links that stay inside the dags folder can be deployed: copy ${copy} in, or ${hiddenAt === undefined ? 'exclude the link in .airflowignore' : leaveOutHidden(hiddenAt)}.`,
    rel,
  );
}

/**
 * Every folder the walk descends into, by resolved path. Reaching one a second time is an error
 * (Airflow raises "Detected recursive loop"); this is also what stops symlink cycles.
 */
export class FolderRegistry {
  private readonly byReal = new Map<string, string>();

  /**
   * Register the folder `real`, reached as `rel` below the resolved folders `chain` (its route).
   * `hiddenAt` is set for a folder that `.airflowignore` hides (Airflow never reaches it) and that
   * `ignoredNonPython: 'ship'` walks: a folder is still shipped once.
   */
  register(real: string, rel: string, chain: readonly string[], hiddenAt?: string): void {
    const seen = this.byReal.get(real);
    if (seen !== undefined) {
      const loop = chain.includes(real);
      const code = loop ? ErrorCodes.BUNDLE_SYMLINK_LOOP : ErrorCodes.BUNDLE_DIR_REACHED_TWICE;
      if (hiddenAt !== undefined) {
        const how = loop ? `leads back to '${seen || '.'}' through a symlink loop` : `is the same folder as '${seen}' (reached twice through a symlink)`;
        throw new BundleError(code, `The folder '${rel}' ${how}; the bundle walks each folder once. Remove the link, or ${leaveOutHidden(hiddenAt)}.`, rel);
      }
      throw new BundleError(
        code,
        loop
          ? `The folder '${rel}' leads back to '${seen || '.'}' through a symlink loop. Airflow refuses such a dags folder ("Detected recursive loop"): remove the link or ignore it in .airflowignore.`
          : `The folder '${rel}' is the same folder as '${seen}' (reached twice through a symlink). Airflow refuses such a dags folder ("Detected recursive loop"): remove one route or ignore it in .airflowignore.`,
        rel,
      );
    }
    this.byReal.set(real, rel);
  }

  /** Whether the folder `real` was registered. */
  has(real: string): boolean {
    return this.byReal.has(real);
  }
}

/**
 * The archive members for the walked file links (the link, rewritten to a relative target, and
 * the target file) and dangling links (shipped as they are, with a warning).
 */
export async function resolveFileLinks(root: string, links: LinkFile[], members: LinkMembers, warn: (w: BundleWarning) => void): Promise<void> {
  const { extra, linkTargets } = members;
  await mapLimit(links, 16, async (f) => {
    const physAbs = path.join(f.physDir, f.name);
    const physRel = toPosix(path.relative(root, physAbs));
    if (f.kind === 'broken-link') {
      const text = await readlink(physAbs).catch((err: unknown) => {
        throw ioError('read the symlink', f.rel, err);
      });
      const lexical = path.resolve(f.physDir, text);
      if (!isInside(root, lexical)) throw escapeError(f.rel, lexical, 'the file', f.hiddenAt);
      extra.set(physRel, linkEntry(physRel, toPosix(path.relative(f.physDir, lexical))));
      warn({ code: 'BROKEN_SYMLINK', message: `The symlink '${f.rel}' points to '${text}', which does not exist; it is shipped as a dangling link.`, file: f.rel, path: toPosix(path.relative(root, lexical)) });
      return;
    }
    const real = await realpath(physAbs).catch((err: unknown) => {
      throw ioError('resolve the symlink', f.rel, err);
    });
    if (!isInside(root, real)) throw escapeError(f.rel, real, 'the file', f.hiddenAt);
    const st = await lstat(real).catch((err: unknown) => {
      throw ioError('read', f.rel, err);
    });
    const targetRel = toPosix(path.relative(root, real));
    extra.set(physRel, linkEntry(physRel, toPosix(path.relative(f.physDir, real))));
    extra.set(targetRel, fileEntry(targetRel, st.size));
    linkTargets.push({ link: f.rel, target: targetRel });
  });
}

/**
 * Ship what the rules left out but a shipped link needs, or the link would dangle after
 * extraction: the targets of file links, and the files reached through a symlinked folder
 * (`routed`: logical and physical paths), which live physically under the link's target.
 */
export function keepLinkTargets(
  linkTargets: LinkMembers['linkTargets'],
  routed: ReadonlyArray<{ rel: string; physRel: string }>,
  dirLinks: readonly FolderLink[],
  shipped: Shipped,
  warn: (w: BundleWarning) => void,
): void {
  const warnedLinks = new Set<string>();
  for (const { link, target } of linkTargets.sort((a, b) => (a.link < b.link ? -1 : 1))) {
    if (shipped.isIncluded(target)) continue;
    const by = shipped.exclusionOf(target);
    shipped.keep({ path: target, reason: 'symlink-target', linkedFrom: link, excludedBy: by?.source ?? 'default' });
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
  for (const { rel, physRel } of routed) {
    if (physRel === rel || shipped.isIncluded(physRel)) continue;
    const by = shipped.exclusionOf(physRel);
    const viaLink = dirLinks.filter((d) => rel.startsWith(`${d.logical}/`)).pop()?.logical ?? rel;
    shipped.keep({ path: physRel, reason: 'symlink-target', linkedFrom: viaLink, excludedBy: by?.source ?? 'default' });
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
}

/** Symlinked folders are shipped as links when anything below them is shipped (`included` sorted). */
export function shipFolderLinks(dirLinks: readonly FolderLink[], included: string[], extra: LinkMembers['extra']): void {
  for (const { logical, entry } of dirLinks) {
    const prefix = `${logical}/`;
    if (hasPrefix(included, prefix)) extra.set(entry.path, entry);
  }
}

/**
 * Add the archive members needed to open `rel` (a logical path that may run through symlinks)
 * after extraction: every symlink on the way (as a relative link) and the final regular file.
 */
export async function materialise(root: string, rel: string, members: LinkMembers): Promise<void> {
  const { extra: entries, linkTargets } = members;
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
        entries.set(physRel, fileEntry(physRel, st.size));
      }
      cur = candidate;
      continue;
    }
    const real = await realpath(candidate).catch((err: unknown) => {
      throw ioError('resolve the symlink', rel, err);
    });
    if (!isInside(root, real)) throw escapeError(toPosix(path.relative(root, candidate)), real);
    const linkRel = toPosix(path.relative(root, candidate));
    entries.set(linkRel, linkEntry(linkRel, toPosix(path.relative(cur, real)) || '.'));
    if (i === parts.length - 1) {
      const tst = await lstat(real);
      const targetRel = toPosix(path.relative(root, real));
      entries.set(targetRel, fileEntry(targetRel, tst.size));
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
