/**
 * SpooledArchive with layers to skip, on export layouts this daemon may not write: an OCI layout
 * export (Docker 25+) names each layer after its diff ID, a legacy export whose manifest.json
 * comes first names them in order; a legacy export whose layers cannot be recognised before they
 * arrive (manifest last, no matching v1 ID) is spooled as before. A layer recognised but not held
 * is reported as a growing blob, and a mismatch with its diff ID fails it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_GZIP, TempSpace } from '../../src/image/blob.js';
import { resolveImage } from '../../src/image/layout.js';
import { isAstroError } from '../../src/core/errors.js';
import { SpooledArchive, type GrowingMember, type SpooledMember } from '../../src/image/spool.js';
import { makeImage, makeTar, noise, writeLegacyArchive, writeOciArchive, type FixtureImage } from './fixtures.js';

let dir: string;
let img: FixtureImage;
const gzip = DEFAULT_GZIP;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-spool-skip-'));
  img = makeImage({ layers: [{ 'a.bin': noise(2_000_000) }, { 'b.bin': noise(1_500_000) }] });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spool(tar: Buffer, held: string[], started: GrowingMember[] = []) {
  const temp = new TempSpace(await mkdtemp(join(dir, 't-')));
  const spooled = new SpooledArchive();
  const members: SpooledMember[] = [];
  async function* source() {
    for (let i = 0; i < tar.length; i += 64 * 1024) yield tar.subarray(i, i + 64 * 1024);
  }
  await spooled.spool(source(), temp, gzip, (m) => members.push(m), undefined, { diffIds: img.diffIds, configDigest: img.configDigest, held: new Set(held) }, (g) =>
    started.push(g),
  );
  const image = await resolveImage(spooled, { archiveName: 'test' });
  return { spooled, members, image };
}

/** A legacy export whose manifest.json comes first, layers in `order` of the image's layers. */
function manifestFirst(order = [0, 1]): Buffer {
  const ids = ['1'.repeat(64), '2'.repeat(64)];
  const configName = `${img.configDigest.slice(7)}.json`;
  return makeTar([
    { name: 'manifest.json', content: JSON.stringify([{ Config: configName, RepoTags: [], Layers: ids.map((id) => `${id}/layer.tar`) }]) },
    { name: configName, content: img.config },
    ...ids.map((id, i) => ({ name: `${id}/layer.tar`, content: img.layers[order[i]!]! })),
  ]);
}

describe('spool with held layers', () => {
  it('drains a layer of an OCI layout export by its name', async () => {
    const path = join(dir, 'oci.tar');
    await writeOciArchive(path, [img]);
    const { spooled, members, image } = await spool(await readFile(path), [img.diffIds[0]!]);
    expect(spooled.skipped(image.layers[0]!.member)).toBe(img.diffIds[0]);
    expect(spooled.skipped(image.layers[1]!.member)).toBeUndefined();
    expect(spooled.skippedBytes).toBe(img.layers[0]!.length);
    expect(members.map((m) => m.digest)).toEqual([img.diffIds[1]]);
    expect(spooled.gzipped(image.layers[1]!.member)?.diffId).toBe(img.diffIds[1]);
  });

  it('drains the layers a legacy manifest.json named before they arrived', async () => {
    const { spooled, members, image } = await spool(manifestFirst(), img.diffIds);
    expect(image.layers.map((l) => spooled.skipped(l.member))).toEqual(img.diffIds);
    expect(spooled.skippedBytes).toBe(img.layers[0]!.length + img.layers[1]!.length);
    expect(members).toHaveLength(0);
  });

  it('reports a layer recognised before its bytes as a growing blob, done with the gzipped digest', async () => {
    const started: GrowingMember[] = [];
    const { spooled, members, image } = await spool(manifestFirst(), [img.diffIds[0]!], started);
    expect(started.map((g) => g.diffId)).toEqual([img.diffIds[1]]);
    await started[0]!.done;
    const gzipped = spooled.gzipped(image.layers[1]!.member)!;
    expect(started[0]!.blob.digest).toBe(gzipped.digest);
    expect(started[0]!.blob.size).toBe(gzipped.size);
    expect(started[0]!.blob.growth?.done).toBe(true);
    expect(members.map((m) => m.digest)).toEqual([img.diffIds[1]]);
  });

  it('fails the spool and the growing blob when a recognised layer does not match its diff ID', async () => {
    const started: GrowingMember[] = [];
    const err = await spool(manifestFirst([1, 0]), [], started).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_INVALID_ARCHIVE')).toBe(true);
    expect(started[0]!.blob.growth?.failed).toBe(true);
    await expect(started[0]!.done).rejects.toThrow(/diff ID/);
  });

  it('spools as before a legacy layer it cannot recognise in time (manifest last, v1 ID not matching)', async () => {
    const path = join(dir, 'legacy.tar');
    await writeLegacyArchive(path, img, 'astro-test/skip:v1');
    const { spooled, members, image } = await spool(await readFile(path), img.diffIds);
    expect(spooled.skippedBytes).toBe(0);
    expect(members.map((m) => m.digest)).toEqual(img.diffIds);
    expect(image.layers.map((l) => spooled.gzipped(l.member)?.diffId)).toEqual(img.diffIds);
  });
});
