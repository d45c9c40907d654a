/**
 * Start a real Azurite blob service for a test file: loopback only, a free port, in-memory, a
 * temporary working folder, telemetry off. Fails (never skips) if Azurite cannot start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  BlobSASPermissions,
  BlobServiceClient,
  SASProtocol,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';

/** Azurite's well-known development account. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteHandle {
  /** Blob endpoint origin, e.g. `http://127.0.0.1:40000`. */
  origin: string;
  /** Process id of the Azurite server (the benchmark reads its CPU time). */
  pid: number | undefined;
  /** `${origin}/devstoreaccount1`. */
  accountUrl: string;
  credential: StorageSharedKeyCredential;
  service: BlobServiceClient;
  /** Create a container (name must be ≥ 3 chars, lowercase). */
  createContainer(name: string): Promise<void>;
  /** A blob SAS URL on `origin` (or `viaOrigin`, e.g. a fault proxy) with the given permissions. */
  sasUrl(container: string, blob: string, permissions: string, viaOrigin?: string, expiresInMs?: number): string;
  /** Download a blob's committed content with the shared key. */
  download(container: string, blob: string): Promise<Buffer>;
  /** Block list of a blob (shared key). */
  blockList(container: string, blob: string): Promise<{ committed: string[]; uncommitted: string[] }>;
  stop(): Promise<void>;
}

/** Spawn `azurite-blob` and wait until it listens. */
export async function startAzurite(): Promise<AzuriteHandle> {
  const cwd = await mkdtemp(join(tmpdir(), 'azurite-'));
  const bin = resolve(process.cwd(), 'node_modules/.bin/azurite-blob');
  const child: ChildProcess = spawn(
    bin,
    [
      '--blobHost', '127.0.0.1',
      '--blobPort', '0',
      '--inMemoryPersistence',
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
      '--silent',
    ],
    { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await new Promise<number>((resolvePort, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`Azurite did not start within 30 s. Output: ${out}`)), 30_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`Azurite failed to spawn (${bin}): ${e.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with ${code} before listening. Output: ${out}`));
    });
  });
  const origin = `http://127.0.0.1:${port}`;
  const accountUrl = `${origin}/${AZURITE_ACCOUNT}`;
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  const service = new BlobServiceClient(accountUrl, credential);

  return {
    origin,
    pid: child.pid,
    accountUrl,
    credential,
    service,
    async createContainer(name) {
      await service.getContainerClient(name).createIfNotExists();
    },
    sasUrl(container, blob, permissions, viaOrigin, expiresInMs = 3_600_000) {
      const sas = generateBlobSASQueryParameters(
        {
          containerName: container,
          blobName: blob,
          permissions: BlobSASPermissions.parse(permissions),
          startsOn: new Date(Date.now() - 60_000),
          expiresOn: new Date(Date.now() + expiresInMs),
          protocol: SASProtocol.HttpsAndHttp,
        },
        credential,
      ).toString();
      return `${viaOrigin ?? origin}/${AZURITE_ACCOUNT}/${container}/${blob}?${sas}`;
    },
    async download(container, blob) {
      return service.getContainerClient(container).getBlockBlobClient(blob).downloadToBuffer();
    },
    async blockList(container, blob) {
      const list = await service.getContainerClient(container).getBlockBlobClient(blob).getBlockList('all');
      return {
        committed: (list.committedBlocks ?? []).map((b) => b.name),
        uncommitted: (list.uncommittedBlocks ?? []).map((b) => b.name),
      };
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(cwd, { recursive: true, force: true });
    },
  };
}
