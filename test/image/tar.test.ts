/**
 * The tar reader and writer against GNU tar, and the one-pass spooling of an export stream
 * (legacy and OCI layouts) into something resolveImage can read.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempSpace } from '../../src/image/blob.js';
import { resolveImage } from '../../src/image/layout.js';
import { SpooledArchive } from '../../src/image/spool.js';
import { indexTarFile, packTrees, walkTarStream, type TarEntry } from '../../src/image/tar.js';
import { makeImage, noise, writeLegacyArchive, writeOciArchive } from './fixtures.js';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-tar-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tar', () => {
  it('packs trees that GNU tar reads back (long names via pax, symlinks), and reads GNU tar output', async () => {
    const src = join(dir, 'src');
    const longDir = join(src, 'a'.repeat(60), 'b'.repeat(60));
    await mkdir(longDir, { recursive: true });
    await writeFile(join(longDir, 'file.py'), 'x = 1\n');
    await writeFile(join(src, 'big.bin'), noise(300_000));
    await writeFile(join(src, 'empty.txt'), '');
    await symlink('big.bin', join(src, 'link.bin'));
    const out = join(dir, 'packed.tar');
    await pipeline(Readable.from(packTrees([{ from: src, to: 'usr/local/airflow/dags' }])), createWriteStream(out));
    const { stdout } = await run('tar', ['-tf', out]);
    const listed = stdout.trim().split('\n').sort();
    expect(listed).toContain(`usr/local/airflow/dags/${'a'.repeat(60)}/${'b'.repeat(60)}/file.py`);
    expect(listed).toContain('usr/local/airflow/dags/link.bin');
    await run('tar', ['-xf', out, '-C', dir]);

    // GNU tar's own long names (././@LongLink) and our pax records both index correctly.
    const gnu = join(dir, 'gnu.tar');
    await run('tar', ['--format=gnu', '-cf', gnu, '-C', src, '.']);
    const pax = join(dir, 'pax.tar');
    await run('tar', ['--format=pax', '-cf', pax, '-C', src, '.']);
    for (const file of [gnu, pax, out]) {
      const entries = await indexTarFile(file);
      const names = entries.map((e) => e.name);
      expect(names.some((n) => n.endsWith(`${'b'.repeat(60)}/file.py`))).toBe(true);
      const big = entries.find((e) => e.name.endsWith('big.bin'))!;
      expect(big.size).toBe(300_000);
      expect(entries.find((e) => e.name.endsWith('link.bin'))).toMatchObject({ type: 'symlink', linkName: 'big.bin' });
      // Walking the stream sees the same members and sizes.
      const walked: TarEntry[] = [];
      let bytes = 0;
      await walkTarStream(createReadStream(file), async (entry, body) => {
        walked.push(entry);
        if (entry.name.endsWith('big.bin')) for await (const c of body) bytes += c.length;
      });
      expect(walked.map((e) => e.name)).toEqual(names);
      expect(bytes).toBe(300_000);
    }
  });
});

describe('spooling an export stream', () => {
  it('reports each layer as it completes and resolves legacy and OCI layouts', async () => {
    const image = makeImage({ layers: [{ 'a.bin': noise(1_200_000) }, { 'b.bin': noise(1_100_000) }, { 'c.txt': 'small layer' }] });
    const legacy = join(dir, 'legacy.tar');
    const oci = join(dir, 'oci.tar');
    await writeLegacyArchive(legacy, image, 'x/y:1', { linkDuplicate: false });
    await writeOciArchive(oci, [image], { withDockerManifest: true });
    for (const [path, format] of [
      [legacy, 'docker'],
      [oci, 'oci'],
    ] as const) {
      const temp = new TempSpace(await mkdtemp(join(dir, 'spool-')));
      const spooled = new SpooledArchive();
      const seen: string[] = [];
      await spooled.spool(createReadStream(path), temp, { level: 1, blockBytes: 256 * 1024, parallelBlocks: 2 }, (m) => seen.push(m.digest));
      // The two big layers were announced by their uncompressed digest; the small one stays in memory.
      expect(seen.sort()).toEqual([image.diffIds[0], image.diffIds[1]].sort());
      const resolved = await resolveImage(spooled, { archiveName: path });
      expect(resolved.format).toBe(format);
      expect(resolved.configDigest).toBe(image.configDigest);
      expect(resolved.layers.map((l) => l.diffId)).toEqual(image.diffIds);
      await temp.dispose();
    }
  });
});
