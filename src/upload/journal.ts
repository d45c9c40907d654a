/**
 * The resume journal: a small append-only file per blob URL listing the block IDs the service
 * acknowledged (201). A later run of the same upload reads it, re-hashes the ranges those IDs name
 * and skips the blocks that still match. It is the only way to resume with a write-only SAS, which
 * cannot ask the service for its block list.
 *
 * The file holds no SAS: it is keyed by a hash of `scheme://host/path` and records only that URL,
 * the payload size and block IDs. Appends are line-sized and a torn last line is ignored, so a
 * crash mid-write loses at most one acknowledgement (that block is simply sent again).
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

const FORMAT = 'astro-deploy-sdk/upload-journal';

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
  private chain: Promise<void> = Promise.resolve();
  private failed: unknown;

  private constructor(
    /** Path of the journal file. */
    readonly path: string,
    private readonly header: JournalHeader,
  ) {}

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

  /** Record an acknowledged block. Writes are serialised; the first failure is kept for {@link flush}. */
  record(blockId: string): void {
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        await appendFile(this.path, `${blockId}\n`);
      } catch (error) {
        this.failed = error;
      }
    });
  }

  /** Wait for pending writes; resolves with the first write error, if any. */
  async flush(): Promise<unknown> {
    await this.chain;
    return this.failed;
  }

  /** Start over (the recorded blocks turned out to be gone). */
  async reset(): Promise<void> {
    await this.chain;
    await writeFile(this.path, `${JSON.stringify(this.header)}\n`, { mode: 0o600 });
  }

  /** Delete the journal (after a successful commit nothing is left to resume). */
  async remove(): Promise<void> {
    await this.chain;
    await rm(this.path, { force: true });
  }
}
