/**
 * Astro projects for the project tests: written to a temp folder per test, hashed before and
 * after (every byte, name, type, mode, link target and modification time: nothing the SDK does may
 * change the project), and the files of built images listed through a real container.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { onTestFinished } from 'vitest';
import { dockerCli } from '../helpers/docker.js';

/** A project file: text, or a symbolic link. */
export type ProjectFile = string | { symlink: string };

/** The DAG integrity test: import every file under dags/ (as Astro's default test does, minus Airflow). */
export const INTEGRITY_TEST = `import importlib.util
import pathlib

import pytest

DAG_FILES = sorted(pathlib.Path("dags").rglob("*.py"))


@pytest.mark.parametrize("path", DAG_FILES, ids=str)
def test_file_imports(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
`;

/** An Astro project on the test runtime image: Dockerfile, two DAGs, a test, the integrity test. */
export function astroProject(baseImage: string, extra: Record<string, ProjectFile | null> = {}): Record<string, ProjectFile> {
  const files: Record<string, ProjectFile | null> = {
    Dockerfile: `FROM ${baseImage}\n`,
    'requirements.txt': '',
    'packages.txt': '',
    '.astro/config.yaml': 'project:\n    name: test-project\n',
    '.astro/test_dag_integrity_default.py': INTEGRITY_TEST,
    'dags/example_dag.py': 'DAG_ID = "example"\n',
    'dags/etl/load.py': 'from pathlib import Path\nTABLE = "load"\n',
    'include/sql/query.sql': 'select 1;\n',
    'plugins/helpers.py': 'def helper():\n    return 1\n',
    'tests/test_dags.py': 'def test_truth():\n    assert 1 + 1 == 2\n',
    ...extra,
  };
  return Object.fromEntries(Object.entries(files).filter((e): e is [string, ProjectFile] => e[1] !== null));
}

/** Write `files` to a new temp folder, removed when the test ends. */
export async function makeProject(files: Record<string, ProjectFile>): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'astro-project-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    if (typeof content === 'string') await writeFile(full, content);
    else await symlink(content.symlink, full);
  }
  return dir;
}

/** A digest of everything in a folder: names, types, modes, sizes, modification times, contents, link targets. */
export async function hashTree(dir: string): Promise<string> {
  const hash = createHash('sha256');
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(dir, path);
      const st = await lstat(full);
      hash.update(`${path}\0${st.mode}\0${st.size}\0${st.mtimeMs}\0`);
      if (st.isSymbolicLink()) hash.update(`link:${await readlink(full)}\0`);
      else if (st.isDirectory()) await walk(path);
      else hash.update(await readFile(full));
    }
  }
  await walk('');
  return hash.digest('hex');
}

/** Hash the project now, and check at the end of the test that it is byte-identical. */
export async function guardProject(dir: string): Promise<() => Promise<void>> {
  const before = await hashTree(dir);
  return async () => {
    const after = await hashTree(dir);
    if (after !== before) throw new Error(`the project folder ${dir} changed`);
  };
}

/** Files (not folders) under `path` in `image`, relative to it, sorted; [] when `path` does not exist. */
export async function filesInImage(image: string, path = '/usr/local/airflow'): Promise<string[]> {
  const out = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c', `cd ${path} 2>/dev/null && find . ! -type d | sort || true`]);
  return out
    .split('\n')
    .map((l) => l.trim().replace(/^\.\//, ''))
    .filter(Boolean);
}

/** Run a command in a container of `image` (no network) and return its stdout. */
export async function runInImage(image: string, script: string): Promise<string> {
  return dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c', script]);
}
