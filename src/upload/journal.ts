/**
 * The resume journal: a small append-only file per blob URL listing the block IDs the service
 * acknowledged (201). A later run of the same upload reads it, re-hashes the ranges those IDs name
 * and skips the blocks that still match. It is the only way to resume with a write-only SAS, which
 * cannot ask the service for its block list.
 *
 * The file holds no SAS: it is keyed by a hash of `scheme://host/path` and records only that URL,
 * the payload size and block IDs. Appends are line-sized and a torn last line is ignored, so a
 * crash mid-write loses at most one acknowledgement (that block is simply sent again).
 *
 * An acknowledgement is appended synchronously, in the same tick the uploader learns of it and
 * before that block's slot is given to another block. Queued asynchronous appends lagged behind
 * the acknowledgements: a process killed mid-upload had sent blocks beyond those in flight whose
 * records were still queued, and the re-run sent them again (tested by killing a child process).
 * One ~90-byte write to the page cache per block costs microseconds and survives the process.
 *
 * One upload at a time owns a journal: a lock file next to it names the owning process. A second
 * upload of the same blob (another CI job, another process) gets {@link JournalBusyError} and goes
 * on without a journal rather than waiting or mixing its records into the first one's. A lock
 * whose process is gone (same host, including an earlier process that had our pid, as in
 * containers) or that is older than {@link STALE_LOCK_MS} is taken over.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';

const FORMAT = 'astro-deploy-sdk/upload-journal';
/** A lock this old is abandoned whoever holds it (no upload of one blob runs for a day). */
export const STALE_LOCK_MS = 24 * 60 * 60 * 1000;

/** Thrown by {@link UploadJournal.open} when another live upload holds the journal. */
export class JournalBusyError extends Error {
  constructor(readonly holder: { pid: number; host: string; since: string }) {
    super(`another upload of the same blob (process ${holder.pid} on ${holder.host}, since ${holder.since}) holds its resume journal`);
    this.name = 'JournalBusyError';
  }
}

interface LockInfo {
  pid: number;
  host: string;
  since: string;
  /** Tells this process from an earlier one that had the same pid (containers often reuse pids). */
  process: string;
}

const THIS_PROCESS = randomUUID();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Create the lock file; false when it exists already. */
async function createLock(path: string, mine: LockInfo): Promise<boolean> {
  try {
    await writeFile(path, JSON.stringify(mine), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  }
}

/**
 * Take the lock file at `path`, or throw {@link JournalBusyError} if a live upload has it. An
 * abandoned lock (dead owner, torn file, older than a day) is removed and taken once; losing that
 * take-over to another process means the lock is busy.
 */
async function takeLock(path: string): Promise<void> {
  const mine: LockInfo = { pid: process.pid, host: hostname(), since: new Date().toISOString(), process: THIS_PROCESS };
  if (await createLock(path, mine)) return;
  let held: Partial<LockInfo> = {};
  try {
    held = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo>;
  } catch {
    // Unreadable or torn: treat it as abandoned.
  }
  const age = Date.now() - Date.parse(held.since ?? '');
  const sameHost = held.host === mine.host;
  const abandoned =
    typeof held.pid !== 'number' ||
    !(age < STALE_LOCK_MS) ||
    // Our pid but not us: a crashed earlier run (the pid cannot belong to two live processes).
    (sameHost && held.pid === process.pid && held.process !== THIS_PROCESS) ||
    (sameHost && held.pid !== process.pid && !processAlive(held.pid));
  if (!abandoned) throw new JournalBusyError({ pid: held.pid!, host: held.host ?? '?', since: held.since ?? '?' });
  await rm(path, { force: true });
  if (!(await createLock(path, mine))) throw new JournalBusyError({ pid: -1, host: '?', since: '?' });
}

/** Default journal folder: `$XDG_CACHE_HOME/astro-deploy-sdk/uploads`, else `~/.cache/astro-deploy-sdk/uploads`. */
export function defaultJournalDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && xdg.trim() !== '' ? xdg : join(homedir(), '.cache');
  return join(base, 'astro-deploy-sdk', 'uploads');
}

interface JournalHeader {
  format: string;
  version: number;
  blob: string;
  size: number;
  createdAt: string;
}

/** Acknowledged blocks of one blob upload, persisted as they arrive. */
export class UploadJournal {
  /** Append-mode descriptor of the journal file while it is held; undefined once released. */
  private fd: number | undefined;
  private failed: unknown;

  private constructor(
    /** Path of the journal file. */
    readonly path: string,
    private readonly header: JournalHeader,
  ) {
    this.fd = openSync(path, 'a', 0o600);
  }

  /** The journal file for `blobUrl` (no query string) in `dir`. */
  static pathFor(dir: string, blobUrl: string): string {
    return join(dir, `${createHash('sha256').update(blobUrl).digest('hex').slice(0, 40)}.journal`);
  }

  /**
   * Open (or start) the journal of `blobUrl` for a payload of `size` bytes. Returns the block IDs
   * recorded by an earlier run with the same size; an unreadable or mismatched file is started over.
   */
  static async open(dir: string, blobUrl: string, size: number): Promise<{ journal: UploadJournal; recorded: string[] }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = UploadJournal.pathFor(dir, blobUrl);
    await takeLock(`${path}.lock`);
    try {
      return await UploadJournal.load(path, blobUrl, size);
    } catch (error) {
      await rm(`${path}.lock`, { force: true }).catch(() => {});
      throw error;
    }
  }

  private static async load(path: string, blobUrl: string, size: number): Promise<{ journal: UploadJournal; recorded: string[] }> {
    const recorded: string[] = [];
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      const lines = text.split('\n');
      try {
        const head = JSON.parse(lines[0] ?? '') as Partial<JournalHeader>;
        if (head.format === FORMAT && head.version === 1 && head.blob === blobUrl && head.size === size) {
          // Only complete lines count: the last one may be torn by a crash.
          for (const line of lines.slice(1, -1)) if (/^[A-Za-z0-9+/]+={0,2}$/.test(line)) recorded.push(line);
          return { journal: new UploadJournal(path, head as JournalHeader), recorded };
        }
      } catch {
        // Not ours or corrupt: start over below.
      }
    }
    const header: JournalHeader = { format: FORMAT, version: 1, blob: blobUrl, size, createdAt: new Date().toISOString() };
    await writeFile(path, `${JSON.stringify(header)}\n`, { mode: 0o600 });
    return { journal: new UploadJournal(path, header), recorded };
  }

  /**
   * Record an acknowledged block, synchronously (see the module comment). A failed write is kept
   * for {@link flush}; nothing is recorded after it.
   */
  record(blockId: string): void {
    if (this.failed || this.fd === undefined) return;
    try {
      writeSync(this.fd, `${blockId}\n`);
    } catch (error) {
      this.failed = error;
    }
  }

  /** The first write error, if any (records are written as they are made). */
  async flush(): Promise<unknown> {
    return this.failed;
  }

  /** Start over (the recorded blocks turned out to be gone): only the header is left. Synchronous like {@link record}, so no record lands before the header. */
  async reset(): Promise<void> {
    const header = `${JSON.stringify(this.header)}\n`;
    if (this.fd === undefined) return writeFile(this.path, header, { mode: 0o600 });
    ftruncateSync(this.fd, 0);
    // Append mode: the header goes to the (new) end, which is the start.
    writeSync(this.fd, header);
  }

  /** Delete the journal (after a successful commit nothing is left to resume) and release it. */
  async remove(): Promise<void> {
    this.close();
    await rm(this.path, { force: true });
    await this.release();
  }

  /** Let other uploads of this blob use the journal (it stays on disk for a later resume). */
  async release(): Promise<void> {
    this.close();
    await rm(`${this.path}.lock`, { force: true });
  }

  private close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      // Already closed: nothing to release.
    }
  }
}
