/**
 * The build context against Docker itself: for each `.dockerignore` edge case, the files our
 * filtered context sends are exactly the files the Docker CLI (`docker build`, legacy builder,
 * which tars the context client-side) puts in an image with `COPY . /ctx/`. Plus the pure parts:
 * `.dockerignore` reading, Dockerfile FROM parsing, the pull rule, `.astro/config.yaml`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Parser } from 'tar';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  contextFilter,
  createBuildContext,
  dockerignoreExcludes,
  listBuildContext,
  parseDockerignore,
} from '../../src/image/build-context.js';
import { memberHeaders, walkTarStream } from '../../src/image/tar.js';
import { dockerfileNeedsBuildKit } from '../../src/image/build.js';
import { dockerfileBaseImages, parseProjectConfig, readAstroProject, shouldPullBaseImages } from '../../src/image/project.js';
import { dockerCli, getTestDocker, removeImagesAfterRun, uniqueName } from '../helpers/docker.js';
import { countEventLoopTurns } from '../helpers/event-loop-turns.js';
import { guardProject, makeProject, type ProjectFile } from './helpers.js';

const images: string[] = [];
beforeAll(async () => {
  await getTestDocker();
});
afterAll(async () => {
  await removeImagesAfterRun(...images);
});

/** The tree every case starts from (a Dockerfile copying the whole context is added). */
const TREE: Record<string, ProjectFile> = {
  'README.md': 'readme',
  'readme.txt': 'lower',
  'notes.md': 'notes',
  'a+b.txt': 'plus',
  'a(1).txt': 'paren',
  'data.csv': 'csv',
  'temp1': 'temp1',
  'temp12': 'temp12',
  'x.pyc': 'pyc',
  'requirements.txt': 'req',
  '.env': 'SECRET=1',
  '.git/HEAD': 'ref: refs/heads/main',
  '.git/objects/ab/cdef': 'obj',
  'dags/dag_a.py': 'a',
  'dags/sub/dag_b.py': 'b',
  'dags/__pycache__/dag_a.cpython-311.pyc': 'pyc',
  'dags/sub/__pycache__/dag_b.cpython-311.pyc': 'pyc',
  'docs/guide.md': 'guide',
  'docs/keep.md': 'keep',
  'docs/deep/inner/keep.md': 'deep keep',
  'docs/deep/inner/other.txt': 'other',
  'include/temp/t.txt': 't',
  'include/data/temp5.txt': 't5',
  'plugins/x.pyc': 'pyc',
  'plugins/p.py': 'p',
  'tests/test_a.py': 't',
  'link-to-readme': { symlink: 'README.md' },
  'link-to-docs': { symlink: 'docs' },
  'weird name #1.txt': 'hash',
  'dir.with.dots/file': 'dots',
};

/** `.dockerignore` edge cases; `exclude` mimics the SDK's in-memory `dags/` line; `files` are added to the tree. */
const CASES: Array<{ name: string; dockerignore?: string; exclude?: string[]; refused?: boolean; files?: Record<string, ProjectFile> }> = [
  { name: 'no .dockerignore' },
  { name: 'plain names only match at the root', dockerignore: 'x.pyc\n__pycache__\ntemp\n' },
  { name: 'double star', dockerignore: '**/__pycache__\n**/*.pyc\n' },
  { name: 'excluded folder with exceptions inside', dockerignore: 'docs\n!docs/keep.md\n!docs/deep/inner/keep.md\n' },
  { name: 'whitelist after *', dockerignore: '*\n!dags\n!requirements.txt\n!include\n' },
  { name: 'exception with ** does not reopen an excluded folder', dockerignore: 'docs\n!**/keep.md\n' },
  { name: 'cleaning: leading slash, ./, .., trailing slash, spaces', dockerignore: '/README.md\n./notes.md\ndocs/../data.csv\ninclude/temp/\n   tests   \n' },
  { name: 'comments only at line start; # inside a name', dockerignore: '# comment\n  # not a comment\nweird name #1.txt\n' },
  { name: 'case-sensitive', dockerignore: 'readme.md\nREADME.TXT\n' },
  { name: 'single-char and class wildcards', dockerignore: 'temp?\n*/temp*\n[a-d]ata.csv\n' },
  { name: 'regexp characters in names', dockerignore: 'a+b.txt\na(1).txt\n' },
  { name: 'later patterns win', dockerignore: '*.md\n!README.md\nREADME.md\n' },
  { name: 'Dockerfile and .dockerignore listed', dockerignore: 'Dockerfile\n.dockerignore\n.git\n.env\n' },
  { name: 'UTF-8 BOM and CRLF line ends', dockerignore: '\ufeffnotes.md\r\ndata.csv\r\n' },
  { name: 'empty and blank lines are ignored', dockerignore: '\n\n   \n\t\ndata.csv\n' },
  { name: 'a lone ! is refused, as docker build refuses it', dockerignore: '!\ndata.csv\n', refused: true },
  { name: 'an unclosed [ class is refused, as docker build refuses it', dockerignore: 'data[.csv\n', refused: true },
  { name: 'escaped class characters and ranges', dockerignore: 'temp[0-9]\n[\\]x]*\n[^d]ata.csv\n' },
  { name: 'symbolic links are matched by their own name', dockerignore: 'link-to-docs\ndocs\n' },
  { name: 'dags/ added in memory wins over a user exception', dockerignore: '!dags/dag_a.py\n', exclude: ['dags/'] },
  { name: 'dotted folder and wildcard folder depth', dockerignore: 'dir.with.dots\n*/x.pyc\n' },
  // Docker carries each pattern's result for a folder down to what is in it, and skips a pattern
  // that cannot change the result so far: a pattern matching a parent is not simply re-applied.
  { name: 'an exception matching only the parent folder does not bring back what it holds', dockerignore: '**/*.txt\n!sp\n', files: { 'sp/h.txt': 'h', 'sp/k.md': 'k' } },
  { name: 'an exception for a folder does not undo a ** pattern inside it', dockerignore: '**/f\n!dir\n', files: { 'dir/f': 'f', 'dir/g': 'g' } },
  { name: 'a pattern skipped for a folder is not applied to what it holds', dockerignore: 'dir\n!dir/f\ndir\n', files: { 'dir/f': 'f', 'dir/g': 'g' } },
  { name: 'a nested folder excluded stays excluded under an exception for its parent', dockerignore: 'docs/deep\n!docs\n' },
  { name: 'an exception reopening a sub-folder of an excluded folder', dockerignore: 'docs\n!docs/deep\n' },
  { name: 'an exception with a wildcard folder does not open the folders under the excluded one', dockerignore: 'docs\n!docs/*/inner\n' },
  // Patterns become Go regular expressions, matched on whole characters.
  { name: '? and * match whole characters, astral ones too', dockerignore: 'a?b\nx*y?z\n', files: { 'a\u{1F600}b': 'emoji', 'x\u{1F389}y\u{1F600}z': 'emoji2' } },
  { name: 'POSIX classes inside [...] are Go character classes', dockerignore: '[[:upper:]]*.md\n' },
  { name: '\\d after a backslash is a digit class, as in a Go regexp', dockerignore: 'temp\\d\n' },
  { name: '** crosses a carriage return in a name but not a line feed', dockerignore: 'include/**/t.txt\n', files: { 'include/cr\rdir/t.txt': 'cr', 'include/lf\ndir/t.txt': 'lf' } },
  { name: 'lines are trimmed as Go trims them (NEL is space, a BOM past the first line is not)', dockerignore: 'notes.md\u0085\n\ufeffdata.csv\n' },
  { name: 'an escape Go regexps refuse is refused, as docker build refuses it', dockerignore: 'data\\q.csv\n', refused: true },
  { name: 'a leading ** without a slash is a suffix of any path, a trailing one a prefix', dockerignore: '**.csv\n**_b.py\ntests**\n' },
  // Docker cleans each line, then cleans and trims the pattern again when compiling it.
  { name: 'a space that cleaning leaves at the end is trimmed', dockerignore: 'notes.md /.\n' },
  { name: '!/ cleans to a lone ! and is refused, as docker build refuses it', dockerignore: 'data.csv\n!/\n', refused: true },
  // Docker compiles a pattern's expression only when a path first reaches it, and its check as it
  // reads the patterns (Go's filepath.Match(pattern, ".")) stops at the first part that cannot match.
  { name: 'a pattern whose expression Go refuses is never compiled when no path reaches it', dockerignore: '!data\\q.csv\n' },
  { name: 'the read check stops where the match fails: an open [ or a trailing \\ after a * passes (the \\ then stands for a $)', dockerignore: '!notes*[\ntemp*\\\n', files: { 'temp$x': 'dollar', 'temp$': 'dollar' } },
];

const DOCKERFILE = 'FROM scratch\nCOPY . /ctx/\n';

/** The file system of the image the Docker CLI builds from this folder with `COPY . /ctx/`, as a tar. */
async function dockerImageTar(dir: string): Promise<Buffer> {
  const tag = `astro-sdk-test/ctx:${uniqueName()}`;
  images.push(tag);
  await dockerCli(['build', '-q', '--platform', 'linux/amd64', '-t', tag, dir]);
  const { docker } = await getTestDocker();
  const container = await docker.createContainer({ Image: tag, Cmd: ['none'], NetworkDisabled: true });
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of (await container.export()) as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks);
  } finally {
    await container.remove({ force: true });
  }
}

/** What the Docker CLI puts in an image from this folder: files and links under /ctx/ (folders left out). */
async function dockerIncludes(dir: string): Promise<string[]> {
  const out: string[] = [];
  const parser = new Parser({
    onReadEntry: (entry) => {
      const path = entry.path.replace(/^\.?\//, '');
      if (path.startsWith('ctx/') && entry.type !== 'Directory') out.push(path.slice(4));
      entry.resume();
    },
  });
  await pipeline(Readable.from([await dockerImageTar(dir)]), parser);
  return out.sort();
}

/** The non-folder members our context stream carries, read back from the tar itself. */
async function ourIncludes(dir: string, exclude?: string[]): Promise<string[]> {
  const ctx = await createBuildContext(dir, exclude ? { exclude } : {});
  const out: string[] = [];
  const parser = new Parser({
    onReadEntry: (entry) => {
      if (entry.type !== 'Directory') out.push(entry.path);
      entry.resume();
    },
  });
  await pipeline(ctx.stream, parser);
  return out.sort();
}

/**
 * The files the daemon's legacy builder takes out of what COPY sees: it reads the Dockerfile and
 * `.dockerignore` from the context, then drops each of them that `.dockerignore` excludes, each
 * looked at alone.
 */
function dropBuildFiles(files: string[], dockerignoreText: string | undefined): string[] {
  const patterns = parseDockerignore(dockerignoreText ?? '');
  return files.filter((f) => !((f === 'Dockerfile' || f === '.dockerignore') && dockerignoreExcludes(f, patterns)));
}

describe('build context vs docker build', () => {
  for (const c of CASES) {
    it(`.dockerignore: ${c.name}`, async () => {
      const tree: Record<string, ProjectFile> = { ...TREE, ...c.files, Dockerfile: DOCKERFILE };
      if (c.dockerignore !== undefined) tree['.dockerignore'] = c.dockerignore;
      const dir = await makeProject(tree);
      const unchanged = await guardProject(dir);
      if (c.refused) {
        const theirs = await dockerIncludes(dir).catch((e: Error) => e);
        expect(theirs).toBeInstanceOf(Error);
        expect(String((theirs as Error).message)).toMatch(/illegal exclusion pattern|syntax error in pattern/);
        const ours = await ourIncludes(dir, c.exclude).catch((e: unknown) => e);
        expect(ours).toMatchObject({ code: 'ASTRO_PROJECT_INVALID', path: '.dockerignore' });
        await unchanged();
        return;
      }
      const ours = await ourIncludes(dir, c.exclude);
      // Docker is given the same patterns: the in-memory lines are written for its copy only.
      let dockerDir = dir;
      if (c.exclude) dockerDir = await makeProject({ ...tree, '.dockerignore': `${c.dockerignore ?? ''}\n${c.exclude.join('\n')}\n` });
      const theirs = await dockerIncludes(dockerDir);
      expect(dropBuildFiles(ours, c.dockerignore)).toEqual(theirs);
      // The Dockerfile and .dockerignore are always sent, even when excluded.
      expect(ours).toContain('Dockerfile');
      if (c.dockerignore !== undefined) expect(ours).toContain('.dockerignore');
      await unchanged();
    }, 120_000);
  }

  it('names that are not valid UTF-8: left out when excluded, else sent byte for byte, as docker build does', async () => {
    const dir = await makeProject({ ...TREE, Dockerfile: DOCKERFILE, '.dockerignore': '*.log\n' });
    // Latin-1 text stands for raw bytes: \xff, \xfe and a lone \xe9 are not UTF-8.
    const bytes = (latin1: string) => Buffer.from(latin1, 'latin1');
    const at = (latin1: string) => Buffer.concat([Buffer.from(`${dir}/`), bytes(latin1)]);
    writeFileSync(at('bad\xffname.log'), 'excluded');
    mkdirSync(at('raw\xfedir'));
    writeFileSync(at('raw\xfedir/in\xff.txt'), 'sent');
    writeFileSync(at('caf\xe9.txt'), 'sent');
    symlinkSync(bytes('target\xff'), at('link\xff'));
    // Over 100 bytes: the name goes in a pax record.
    const long = `raw\xfedir/${'long-'.repeat(24)}\xff.txt`;
    writeFileSync(at(long), 'sent');
    const image = await dockerImageTar(dir);
    const ctx = await createBuildContext(dir);
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.stream as AsyncIterable<Buffer>) chunks.push(chunk);
    const ours = Buffer.concat(chunks);
    // The same bytes reach the daemon: names and link targets as they are on disk.
    for (const sent of ['raw\xfedir/in\xff.txt', 'caf\xe9.txt', 'link\xff', 'target\xff', long]) {
      expect(image.includes(bytes(sent)), sent).toBe(true);
      expect(ours.includes(bytes(sent)), sent).toBe(true);
    }
    expect(image.includes(bytes('bad\xffname.log'))).toBe(false);
    expect(ours.includes(bytes('bad\xffname.log'))).toBe(false);
    // Listed by a reader that decodes pax records by their byte length (node-tar cannot read
    // those holding bytes that are not UTF-8); each such byte reads as U+FFFD.
    const members = async (tar: Buffer, under: string) => {
      const out: string[] = [];
      await walkTarStream(Readable.from([tar]), async (entry) => {
        const path = entry.name.replace(/\/$/, '');
        if (entry.type !== 'directory' && path.startsWith(under)) out.push(path.slice(under.length));
      });
      return out.sort();
    };
    expect(dropBuildFiles(await members(ours, ''), '*.log\n')).toEqual(await members(image, 'ctx/'));
    // Listed with each byte that is not UTF-8 read as U+FFFD.
    const listed = await listBuildContext(dir);
    expect(listed).toContainEqual({ path: 'raw\ufffddir/in\ufffd.txt', type: 'file' });
    expect(listed).toContainEqual({ path: 'link\ufffd', type: 'symlink' });
    expect(listed.some((e) => e.path.endsWith('.log'))).toBe(false);
  }, 120_000);

  it('a pattern whose expression Go refuses, reached only inside an excluded folder an exception opens, is refused; docker build sends the context cut short there', async () => {
    const dir = await makeProject({ Dockerfile: DOCKERFILE, '.dockerignore': '*\n!d/a\nq*/z[\n', 'd/a': 'a', 'd/b': 'b', e: 'e' });
    // Docker's check walk never enters d (excluded); its tar walk does, reaches the pattern at d/a
    // and stops, without an error: d/a is not sent.
    const theirs = await dockerIncludes(dir);
    expect(theirs.filter((f) => f !== 'Dockerfile' && f !== '.dockerignore')).toEqual([]);
    for (const ours of [await ourIncludes(dir).catch((e: unknown) => e), await listBuildContext(dir).catch((e: unknown) => e)]) {
      expect(ours).toMatchObject({ code: 'ASTRO_PROJECT_INVALID', path: '.dockerignore' });
      expect((ours as Error).message).toMatch(/"q\*\/z\[".*"d\/a"/);
    }
  }, 120_000);

  it('an unreadable .dockerignore (here a folder) is refused with ASTRO_PROJECT_INVALID naming it, as docker build refuses it', async () => {
    const dir = await makeProject({ ...TREE, Dockerfile: DOCKERFILE, '.dockerignore/notes': 'x' });
    const theirs = await dockerIncludes(dir).catch((e: Error) => e);
    expect(theirs).toBeInstanceOf(Error);
    expect(String((theirs as Error).message)).toMatch(/\.dockerignore.*is a directory/);
    for (const ours of [await ourIncludes(dir).catch((e: unknown) => e), await listBuildContext(dir).catch((e: unknown) => e)]) {
      expect(ours).toMatchObject({ code: 'ASTRO_PROJECT_INVALID', name: 'ProjectError', path: '.dockerignore' });
      expect((ours as Error).message).toMatch(/\.dockerignore cannot be read \(EISDIR\).*readable file/);
    }
  }, 120_000);
});

/**
 * The context tar as the plain writer makes it: each member's headers, its whole content, its
 * padding, one after the other, then two zero blocks. The streamed context must match it byte for byte.
 */
async function referenceTar(dir: string, entries: Array<{ path: string; type: 'file' | 'dir' | 'symlink' }>): Promise<Buffer> {
  const { lstat, readFile, readlink } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const out: Buffer[] = [];
  for (const entry of entries) {
    const abs = join(dir, entry.path);
    const st = await lstat(abs);
    const mtime = st.mtimeMs / 1000;
    if (entry.type === 'dir') out.push(...memberHeaders(`${entry.path}/`, 0, '5', st.mode, mtime));
    else if (entry.type === 'symlink') out.push(...memberHeaders(entry.path, 0, '2', 0o777, mtime, await readlink(abs)));
    else {
      const data = await readFile(abs);
      out.push(...memberHeaders(entry.path, data.length, '0', st.mode, mtime), data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

describe('build context stream', () => {
  it('streams members with root ownership, kept modes and link targets, and counts what it sent', async () => {
    const dir = await makeProject({ ...TREE, Dockerfile: DOCKERFILE, '.dockerignore': 'docs\n.git\n' });
    const ctx = await createBuildContext(dir);
    const members: Array<{ path: string; uid: number; gid: number; type: string; linkpath?: string; size: number }> = [];
    const parser = new Parser({
      onReadEntry: (entry) => {
        members.push({ path: entry.path, uid: entry.uid ?? -1, gid: entry.gid ?? -1, type: entry.type, size: entry.size ?? 0, ...(entry.linkpath ? { linkpath: entry.linkpath } : {}) });
        entry.resume();
      },
    });
    await pipeline(ctx.stream, parser);
    expect(members.every((m) => m.uid === 0 && m.gid === 0)).toBe(true);
    expect(members.find((m) => m.path === 'link-to-docs')).toMatchObject({ type: 'SymbolicLink', linkpath: 'docs' });
    expect(members.some((m) => m.path.startsWith('docs/') || m.path.startsWith('.git/'))).toBe(false);
    expect(ctx.stats.files).toBe(members.filter((m) => m.type === 'File').length);
    expect(ctx.stats.symlinks).toBe(2);
    expect(ctx.stats.excluded).toBe(2);
    expect(ctx.stats.contentBytes).toBe(members.reduce((n, m) => n + (m.type === 'File' ? m.size : 0), 0));
  });

  it('reads files as the consumer pulls: a big context is never held in memory', async () => {
    const dir = await makeProject({ Dockerfile: DOCKERFILE });
    const { writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const mb = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 192; i++) await writeFile(join(dir, `blob-${i}.bin`), mb);
    const ctx = await createBuildContext(dir);
    const before = process.memoryUsage().rss;
    let peak = before;
    let total = 0;
    for await (const chunk of ctx.stream as AsyncIterable<Buffer>) {
      total += chunk.length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(total).toBe(ctx.stats.tarBytes);
    expect(ctx.stats.contentBytes).toBe(192 * 1024 * 1024 + DOCKERFILE.length);
    // 192 MiB went through; the process grew by what V8 leaves uncollected (~30 MiB measured,
    // bounded by when it collects, not by the bytes), far less than the bytes.
    expect(peak - before).toBeLessThan(96 * 1024 * 1024);
  });

  it('is byte-identical to a one-member-at-a-time tar writer, the same on every run, and sent in few large chunks', async () => {
    // Many small files (read whole), files around the 256 KiB small-file limit and a large one
    // (streamed), empty files, links, nested and excluded folders.
    const files: Record<string, ProjectFile> = { ...TREE, Dockerfile: DOCKERFILE, '.dockerignore': 'docs\n!docs/keep.md\n**/__pycache__\n', 'empty.txt': '' };
    for (let i = 0; i < 150; i++) files[`dags/group_${i % 7}/dag_${i}.py`] = `DAG_ID = "dag_${i}"\n${'#'.repeat(i * 13)}\n`;
    const dir = await makeProject(files);
    const { writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) % 251));
    await writeFile(join(dir, 'include/at-limit.bin'), pattern(256 * 1024, 1));
    await writeFile(join(dir, 'include/over-limit.bin'), pattern(256 * 1024 + 1, 2));
    await writeFile(join(dir, 'include/large.bin'), pattern(3 * 1024 * 1024 + 77, 3));
    const read = async () => {
      const ctx = await createBuildContext(dir);
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.stream as AsyncIterable<Buffer>) chunks.push(chunk);
      return { bytes: Buffer.concat(chunks), chunks: chunks.length, stats: ctx.stats };
    };
    const first = await read();
    const again = await read();
    expect(again.bytes.equals(first.bytes)).toBe(true);
    const expected = await referenceTar(dir, await listBuildContext(dir));
    expect(first.bytes.length).toBe(expected.length);
    expect(first.bytes.equals(expected)).toBe(true);
    expect(first.stats.tarBytes).toBe(expected.length);
    // About 4 MiB: a few dozen writes, not one per header, file and padding (over 600 pieces).
    expect(first.chunks).toBeLessThan(40);
  });

  it('lets the event loop run while it lists and reads thousands of small files', async () => {
    const files: Record<string, ProjectFile> = { Dockerfile: DOCKERFILE };
    for (let i = 0; i < 3000; i++) files[`dags/group_${i % 30}/dag_${i}.py`] = `DAG_ID = "dag_${i}"\n`;
    const dir = await makeProject(files);
    const loop = countEventLoopTurns();
    const ctx = await createBuildContext(dir);
    const started = performance.now();
    for await (const chunk of ctx.stream as AsyncIterable<Buffer>) void chunk;
    const elapsedMs = performance.now() - started;
    const turns = loop.stop();
    expect(ctx.stats.files).toBe(3001);
    // Synchronous reads in slices of ~4 ms: the event loop had a turn at least that often.
    expect(turns).toBeGreaterThanOrEqual(Math.floor(elapsedMs / 10));
  });

  it('stops the walk when the signal fires', async () => {
    const dir = await makeProject({ ...TREE, Dockerfile: DOCKERFILE });
    const controller = new AbortController();
    const ctx = await createBuildContext(dir, { signal: controller.signal });
    controller.abort();
    const err = await (async () => {
      for await (const chunk of ctx.stream as AsyncIterable<Buffer>) void chunk;
    })().catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ASTRO_ABORTED');
  });

  it('lists without reading content, in sending order', async () => {
    const dir = await makeProject({ Dockerfile: DOCKERFILE, 'b.txt': 'b', 'a/x.txt': 'x', '.dockerignore': 'a\n!a/x.txt\n' });
    const list = await listBuildContext(dir);
    // The excluded folder's entry is not sent, its exception is.
    expect(list).toEqual([
      { path: '.dockerignore', type: 'file' },
      { path: 'Dockerfile', type: 'file' },
      { path: 'a/x.txt', type: 'file' },
      { path: 'b.txt', type: 'file' },
    ]);
  });
});

describe('.dockerignore reading', () => {
  it('drops comments, blanks and a BOM, trims, cleans paths and keeps negation', () => {
    expect(parseDockerignore('\ufeff# c\n\n  a/b/  \n!/c/./d\n../e\n  # f\n/\n')).toEqual(['a/b', '!c/d', '../e', '# f', '/']);
  });

  it('reads <dockerfile>.dockerignore instead of .dockerignore when it exists, as docker build with BuildKit does', async () => {
    const files = { Dockerfile: DOCKERFILE, 'secret.txt': 's', 'notes.md': 'n', 'docker/Dockerfile.prod': DOCKERFILE };
    const dir = await makeProject({ ...files, '.dockerignore': 'notes.md\n', 'Dockerfile.dockerignore': 'secret.txt\n', 'docker/Dockerfile.prod.dockerignore': '*.md\n*.txt\n' });
    const paths = async (dockerfile?: string) => (await listBuildContext(dir, dockerfile ? { dockerfile } : {})).map((e) => e.path);
    // The default Dockerfile: its own ignore file wins; .dockerignore is not read.
    expect(await paths()).toContain('notes.md');
    expect(await paths()).not.toContain('secret.txt');
    // Another Dockerfile: the ignore file next to it, named after it.
    const prod = await paths('docker/Dockerfile.prod');
    expect(prod).not.toContain('secret.txt');
    expect(prod).not.toContain('notes.md');
    // Without a Dockerfile-specific file, .dockerignore.
    const plain = await makeProject({ ...files, '.dockerignore': 'notes.md\n' });
    expect((await listBuildContext(plain)).map((e) => e.path)).toEqual(expect.arrayContaining(['secret.txt']));
    expect((await listBuildContext(plain)).map((e) => e.path)).not.toContain('notes.md');
    // The one that applies must be readable.
    const unreadable = await makeProject({ ...files, 'Dockerfile.dockerignore/x': 'not a file' });
    await expect(listBuildContext(unreadable)).rejects.toMatchObject({ code: 'ASTRO_PROJECT_INVALID', path: 'Dockerfile.dockerignore' });
  });

  it("judges a path as Docker's walk does, each folder on the way first, and a path alone as Docker's build-file check does", () => {
    const walked = (lines: string[], path: string) => contextFilter(lines).excludes(path);
    expect(walked(['**/*.txt', '!sp'], 'sp/h.txt')).toBe(true);
    expect(walked(['**/f', '!dir'], 'dir/f')).toBe(true);
    expect(walked(['dir', '!dir/f', 'dir'], 'dir/f')).toBe(false);
    expect(walked(['dir', '!dir/f', 'dir'], 'dir/g')).toBe(true);
    // Alone, an exception matching a folder counts for what it holds.
    expect(dockerignoreExcludes('sp/h.txt', ['**/*.txt', '!sp'])).toBe(false);
    expect(contextFilter(['docs', '!docs/*/inner']).mustDescend('docs')).toBe(true);
    expect(contextFilter(['docs', '!docs/*/inner']).mustDescend('docs/deep')).toBe(false);
  });
});

describe('project', () => {
  it('finds the base images of a Dockerfile: continuations, flags, stages, comments, escape directive', () => {
    expect(dockerfileBaseImages('FROM quay.io/astronomer/astro-runtime:12.1.0\nRUN x\n')).toEqual(['quay.io/astronomer/astro-runtime:12.1.0']);
    expect(
      dockerfileBaseImages(
        '# syntax=docker/dockerfile:1\nFROM --platform=linux/amd64 python:3.12 AS build\n# c\nfrom \\\n  astrocrpublic.azurecr.io/runtime:3.1-2 as final\nFROM build\nCOPY --from=build /x /x\n',
      ),
    ).toEqual(['python:3.12', 'astrocrpublic.azurecr.io/runtime:3.1-2']);
    expect(dockerfileBaseImages('# escape=`\nFROM a:1 `\n  AS x\nFROM x\n')).toEqual(['a:1']);
  });

  it('needs BuildKit for what only BuildKit builds as docker build does: unknown flags (continued lines too), heredocs, platform args, # syntax', () => {
    const base = 'FROM quay.io/astronomer/astro-runtime:3.1-3\n';
    for (const plain of [
      'RUN pip install -r requirements.txt\n',
      'COPY --chown=astro:astro --from=build /a /b\nADD --chown=1:1 x /x\n',
      'RUN ["echo", "--mount=not-a-flag"]\n',
      'ENV TARGET=prod\nARG BUILD_NUMBER\nRUN echo $TARGET_DIR\n',
      '# RUN --mount=type=cache,target=/x true\n',
    ]) {
      expect(dockerfileNeedsBuildKit(base + plain), plain).toBe(false);
    }
    for (const kit of [
      'RUN --mount=type=cache,target=/root/.cache pip install x\n',
      'RUN \\\n  --mount=type=cache,target=/root/.cache \\\n  pip install x\n',
      'RUN --network=none true\n',
      'RUN --security=insecure true\n',
      'COPY --link a /a\n',
      'COPY --chmod=755 a /a\n',
      'COPY --exclude=*.pyc . /x\n',
      'ADD --checksum=sha256:abc https://example.invalid/x /x\n',
      'RUN <<EOF\necho hi\nEOF\n',
      'ARG TARGETARCH\nRUN echo $TARGETARCH\n',
      'ARG TARGETPLATFORM\n',
      'LABEL arch=${BUILDARCH}\n',
    ]) {
      expect(dockerfileNeedsBuildKit(base + kit), kit).toBe(true);
    }
    expect(dockerfileNeedsBuildKit('# syntax=docker/dockerfile:1\n' + base)).toBe(true);
    expect(dockerfileNeedsBuildKit('FROM --platform=$BUILDPLATFORM python:3.12\n')).toBe(true);
    // The escape directive changes the continuation character.
    expect(dockerfileNeedsBuildKit('# escape=`\n' + base + 'RUN `\n  --mount=type=cache,target=/x true\n')).toBe(true);
  });

  it("pulls only when every FROM is an Astro Runtime image (the CLI's rule)", () => {
    expect(shouldPullBaseImages(['quay.io/astronomer/astro-runtime:12.1.0'])).toBe(true);
    expect(shouldPullBaseImages(['astrocrpublic.azurecr.io/runtime:3.1-2', 'quay.io/astronomer/astro-runtime:12.1.0'])).toBe(true);
    expect(shouldPullBaseImages(['quay.io/astronomer/astro-runtime:12.1.0', 'python:3.12'])).toBe(false);
    expect(shouldPullBaseImages(['my-registry/astro-runtime:12.1.0'])).toBe(false);
    expect(shouldPullBaseImages([])).toBe(false);
  });

  it('reads project.deployment from .astro/config.yaml as astro writes it', () => {
    expect(parseProjectConfig('project:\n    name: proj\n    deployment: clabc123\n')).toEqual({ name: 'proj', deployment: 'clabc123' });
    expect(parseProjectConfig('# c\nproject:\n  deployment: "clq"  # comment\n  other:\n    deployment: nested\ncontext: x\n')).toEqual({ deployment: 'clq' });
    expect(parseProjectConfig("project:\n  deployment: 'it''s'\n")).toEqual({ deployment: "it's" });
    expect(parseProjectConfig('deployment: top\nproject: {}\n')).toEqual({});
  });

  it('refuses a folder without a Dockerfile, or a Dockerfile outside it, with ASTRO_PROJECT_NOT_FOUND', async () => {
    const dir = await makeProject({ 'dags/a.py': 'x' });
    for (const [path, options] of [
      [dir, {}],
      [`${dir}/missing`, {}],
      [dir, { dockerfile: '../Dockerfile' }],
    ] as const) {
      const err = await readAstroProject(path, options).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ASTRO_PROJECT_NOT_FOUND', name: 'ProjectError' });
    }
  });
});

