/**
 * Tar members of 8 GiB and more (and mtimes past 8^11 s): the size no longer fits the 11 octal
 * digits of a ustar header. Our writer must emit a pax record (plus GNU base-256 in the field) that
 * GNU tar and Python's tarfile read back; our readers must honour a pax `size` record (Go's
 * archive/tar, i.e. Docker, writes one with 0 in the field) and base-256 fields. Archives are
 * sparse files: the 8 GiB data region is a hole, so no disk is used and tools seek over it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, open, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexTarFile, memberHeaders, packTrees, walkTarStream, type TarEntry } from '../../src/image/tar.js';

const run = promisify(execFile);
const BIG = 8 * 1024 ** 3 + 1; // 8 GiB + 1: one past what 11 octal digits hold
const OCTAL_MAX = 0o77777777777;
const FAR_MTIME = 8 ** 11; // 2242-03-16: one past the octal limit of the mtime field
const MTIME = 1_700_000_000;
const padded = (n: number) => Math.ceil(n / 512) * 512;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-tar-large-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small member: its headers, data and padding. */
function smallMember(name: string, content: string, mtime = MTIME): Buffer {
  const data = Buffer.from(content);
  return Buffer.concat([...memberHeaders(name, data.length, '0', 0o644, mtime), data, Buffer.alloc(padded(data.length) - data.length)]);
}

/**
 * A sparse archive file: `head` (headers of a member of `size` bytes), a hole for its data, then
 * `tail` (more members and the end blocks).
 */
async function sparseArchive(path: string, head: Buffer, size: number, tail: Buffer): Promise<{ dataStart: number; tailStart: number }> {
  const dataStart = head.length;
  const tailStart = dataStart + padded(size);
  const fh = await open(path, 'w');
  try {
    await fh.write(head, 0, head.length, 0);
    await fh.truncate(tailStart); // the data region: a hole, no blocks allocated
    await fh.write(tail, 0, tail.length, tailStart);
  } finally {
    await fh.close();
  }
  return { dataStart, tailStart };
}

/** `parts` as an async stream of chunks. */
async function* chunks(...parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield p;
}

/** The first entry walkTarStream reports for `bytes` (headers only; data is not needed). */
async function firstWalkedEntry(bytes: Buffer): Promise<TarEntry> {
  let first: TarEntry | undefined;
  const stop = new Error('stop');
  await walkTarStream(chunks(bytes), async (entry) => {
    first = entry;
    throw stop;
  }).catch((err: unknown) => {
    if (err !== stop) throw err;
  });
  return first!;
}

const PY_LIST = `
import json, sys, tarfile
with tarfile.open(sys.argv[1], 'r:') as t:
    print(json.dumps([[m.name, m.size, int(m.mtime), m.type.decode()] for m in t.getmembers()]))
`;

/** Python writes one header for a member: format PAX (0 in the field, pax size) or GNU (base-256). */
const PY_HEADER = `
import sys, tarfile
ti = tarfile.TarInfo(sys.argv[1])
ti.size = int(sys.argv[2])
ti.mtime = ${MTIME}
ti.mode = 0o644
if len(sys.argv) > 4:
    ti.pax_headers = {'size': sys.argv[4]}
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT}[sys.argv[3]]
sys.stdout.buffer.write(ti.tobuf(fmt, 'utf-8', 'surrogateescape'))
`;

async function pyHeader(name: string, size: number, format: 'pax' | 'gnu', paxSize?: number): Promise<Buffer> {
  const args = ['-c', PY_HEADER, name, String(size), format, ...(paxSize === undefined ? [] : [String(paxSize)])];
  const { stdout } = await run('python3', args, { encoding: 'buffer' });
  return stdout;
}

describe('writing headers for members of 8 GiB and more', () => {
  it('a normal size stays a single ustar header with octal fields', async () => {
    const headers = memberHeaders('layer.tar', 1234, '0', 0o644, MTIME);
    expect(headers).toHaveLength(1);
    const h = headers[0]!;
    expect(h.subarray(124, 136).toString('latin1')).toBe('00000002322\0');
    expect(h.subarray(136, 148).toString('latin1')).toBe(`${MTIME.toString(8).padStart(11, '0')}\0`);
    expect(await firstWalkedEntry(Buffer.concat(headers))).toMatchObject({ name: 'layer.tar', type: 'file', size: 1234 });
    // The largest size that still fits: no pax header either.
    expect(memberHeaders('edge', OCTAL_MAX, '0', 0o644, MTIME)).toHaveLength(1);
  });

  it('8 GiB + 1 gets a pax size record and base-256 in the field, and reads back', async () => {
    const headers = memberHeaders('big.layer', BIG, '0', 0o644, MTIME);
    expect(headers).toHaveLength(4); // pax header, pax data, its padding, the member's header
    expect(headers[1]!.toString('utf8')).toBe(`19 size=${BIG}\n`);
    const field = headers[3]!.subarray(124, 136);
    expect(field[0]).toBe(0x80);
    expect(Number(field.subarray(1).readBigUInt64BE(3))).toBe(BIG);
    expect(await firstWalkedEntry(Buffer.concat(headers))).toMatchObject({ name: 'big.layer', type: 'file', size: BIG });
  });

  it('an mtime past the octal limit gets a pax mtime record', () => {
    const headers = memberHeaders('future.txt', 3, '0', 0o644, FAR_MTIME);
    expect(headers[1]!.toString('utf8')).toBe(`20 mtime=${FAR_MTIME}\n`);
    expect(headers[3]![136]).toBe(0x80);
  });

  it('GNU tar and Python tarfile list an 8 GiB + 1 member we wrote, and the members after it', { timeout: 20_000 }, async () => {
    const path = join(dir, 'ours.tar');
    const tail = Buffer.concat([smallMember('after.txt', 'hello'), smallMember('future.txt', 'abc', FAR_MTIME), Buffer.alloc(1024)]);
    const { dataStart, tailStart } = await sparseArchive(path, Buffer.concat(memberHeaders('big.layer', BIG, '0', 0o644, MTIME)), BIG, tail);

    // Our own index.
    const entries = await indexTarFile(path);
    expect(entries.map((e) => [e.name, e.size, e.offset])).toEqual([
      ['big.layer', BIG, dataStart],
      ['after.txt', 5, tailStart + 512],
      ['future.txt', 3, tailStart + 1024 + 1536], // after after.txt (header, data), then its pax header, record, header
    ]);

    // GNU tar (seeks over the hole).
    const gnu = await run('tar', ['-tvf', path]);
    expect(gnu.stderr).toBe('');
    const lines = gnu.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`\\s${BIG}\\s.*\\sbig\\.layer$`));
    expect(lines[1]).toMatch(/\s5\s.*\safter\.txt$/);
    expect(lines[2]).toMatch(/\s3\s2242-03-16 .*\sfuture\.txt$/);

    // Python's tarfile.
    const py = await run('python3', ['-c', PY_LIST, path]);
    expect(JSON.parse(py.stdout)).toEqual([
      ['big.layer', BIG, MTIME, '0'],
      ['after.txt', 5, MTIME, '0'],
      ['future.txt', 3, FAR_MTIME, '0'],
    ]);
  });
});

describe('reading headers of members of 8 GiB and more', () => {
  for (const format of ['pax', 'gnu'] as const) {
    it(`indexes an 8 GiB + 1 member with a ${format === 'pax' ? 'pax size record and 0 in the field (Go, Docker)' : 'GNU base-256 size'}`, async () => {
      const head = await pyHeader('big.layer', BIG, format);
      const field = head.subarray(head.length - 512 + 124, head.length - 512 + 136);
      if (format === 'pax') {
        expect(head.toString('latin1')).toContain(`size=${BIG}\n`);
        expect(field.toString('latin1')).toBe('00000000000\0'); // the truth is only in the pax record
      } else {
        expect(field[0]).toBe(0x80);
      }
      const path = join(dir, `python-${format}.tar`);
      const { dataStart, tailStart } = await sparseArchive(path, head, BIG, Buffer.concat([smallMember('after.txt', 'hello'), Buffer.alloc(1024)]));
      const entries = await indexTarFile(path);
      expect(entries.map((e) => [e.name, e.size, e.offset])).toEqual([
        ['big.layer', BIG, dataStart],
        ['after.txt', 5, tailStart + 512],
      ]);
      expect(await firstWalkedEntry(head)).toMatchObject({ name: 'big.layer', size: BIG });
    });
  }

  it('walks past a member whose data length comes from a pax size record, not the header field', async () => {
    // What Go writes for a > 8 GiB layer (0 in the field, the truth in pax), at a size that can be streamed.
    const head = await pyHeader('layer.tar', 0, 'pax', 1000);
    const data = Buffer.alloc(1000, 7);
    const archive = Buffer.concat([head, data, Buffer.alloc(padded(1000) - 1000), smallMember('after.txt', 'hello'), Buffer.alloc(1024)]);
    const seen: Array<[string, number, number]> = [];
    await walkTarStream(chunks(archive), async (entry, body) => {
      let n = 0;
      for await (const c of body) n += c.length;
      seen.push([entry.name, entry.size, n]);
    });
    expect(seen).toEqual([
      ['layer.tar', 1000, 1000],
      ['after.txt', 5, 5],
    ]);
    const path = join(dir, 'pax-size.tar');
    const fh = await open(path, 'w');
    await fh.write(archive);
    await fh.close();
    expect((await indexTarFile(path)).map((e) => [e.name, e.size])).toEqual([
      ['layer.tar', 1000],
      ['after.txt', 5],
    ]);
  });

  it('refuses a malformed pax size record instead of guessing', async () => {
    const head = await pyHeader('layer.tar', 0, 'pax', 1000);
    const bad = Buffer.from(head.toString('latin1').replace('size=1000', 'size=1e03'), 'latin1');
    await expect(walkTarStream(chunks(bad, Buffer.alloc(2048)), async () => undefined)).rejects.toThrow(/invalid pax size/);
  });
});

describe('long link targets', () => {
  it('a multi-byte link target longer than its field does not spill into the name prefix', async () => {
    const src = join(dir, 'links');
    await mkdir(src, { recursive: true });
    const target = 'é'.repeat(100); // 200 bytes: used to overrun the link field up to the prefix field
    await symlink(target, join(src, 'link'));
    const chunks: Buffer[] = [];
    for await (const c of packTrees([{ from: src, to: 'dags' }])) chunks.push(c);
    const path = join(dir, 'links.tar');
    const fh = await open(path, 'w');
    await fh.write(Buffer.concat(chunks));
    await fh.close();
    const entries = await indexTarFile(path);
    expect(entries.find((e) => e.type === 'symlink')).toMatchObject({ name: 'dags/link', linkName: target });
    const { stdout } = await run('tar', ['-tf', path]);
    expect(stdout.trim().split('\n')).toEqual(['dags/', 'dags/link']);
  });
});
