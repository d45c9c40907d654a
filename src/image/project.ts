/**
 * What the SDK reads from an Astro project folder, and nothing it writes: the Dockerfile (its
 * `FROM` lines decide whether the build pulls, as `astro deploy` decides it) and
 * `.astro/config.yaml` (`project.deployment`, the deployment `astro deploy` targets when no ID
 * is given). A folder without a Dockerfile is not an Astro project.
 */
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { ErrorCodes, ProjectError } from '../core/errors.js';

/** The Dockerfile of a project unless another is named. */
export const DEFAULT_DOCKERFILE = 'Dockerfile';

/** Where `astro` keeps the project's settings. */
export const PROJECT_CONFIG_FILE = '.astro/config.yaml';

/**
 * Registries whose base images `pull: 'auto'` refreshes: the CLI passes `--pull` only when every
 * `FROM` names an image from one of them (Astro Runtime images).
 */
export const ASTRO_BASE_IMAGE_PREFIXES: readonly string[] = ['quay.io/astronomer', 'astrocrpublic.azurecr.io'];

/** Settings read from `.astro/config.yaml`. */
export interface ProjectConfig {
  /** `project.deployment`: the deployment ID `astro deploy` uses when none is given. */
  deployment?: string;
  /** `project.name`. */
  name?: string;
}

/** An Astro project folder, as {@link readAstroProject} found it. */
export interface AstroProject {
  /** Absolute path of the project folder. */
  dir: string;
  /** The Dockerfile, relative to `dir` with `/` separators (what the build is told). */
  dockerfile: string;
  /** Absolute path of the Dockerfile. */
  dockerfilePath: string;
  /** Images named by the Dockerfile's `FROM` lines, in order (stage references left out). */
  baseImages: string[];
  /** What `.astro/config.yaml` holds (empty when the file is absent). */
  config: ProjectConfig;
}

async function statOrUndefined(path: string) {
  return stat(path).catch(() => undefined);
}

/**
 * Read a project folder: check it is one (a folder with the Dockerfile), read the Dockerfile's
 * base images and `.astro/config.yaml`. Reads only; writes nothing.
 *
 * @param projectDir the Astro project folder.
 * @param options.dockerfile the Dockerfile, relative to the project. @default 'Dockerfile'
 * @throws ProjectError `ASTRO_PROJECT_NOT_FOUND` when the folder or its Dockerfile is missing, or
 *   the Dockerfile is outside the folder.
 */
export async function readAstroProject(projectDir: string, options: { dockerfile?: string } = {}): Promise<AstroProject> {
  const dir = resolve(projectDir);
  const dirStat = await statOrUndefined(dir);
  if (!dirStat?.isDirectory()) {
    throw new ProjectError(ErrorCodes.PROJECT_NOT_FOUND, `Project folder ${dir} does not exist (or is not a folder).`, dir);
  }
  const named = options.dockerfile ?? DEFAULT_DOCKERFILE;
  const dockerfilePath = resolve(dir, named);
  const rel = relative(dir, dockerfilePath);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new ProjectError(
      ErrorCodes.PROJECT_NOT_FOUND,
      `The Dockerfile ${dockerfilePath} must be inside the project folder ${dir}: the build context is that folder.`,
      dockerfilePath,
    );
  }
  const fileStat = await statOrUndefined(dockerfilePath);
  if (!fileStat?.isFile()) {
    throw new ProjectError(
      ErrorCodes.PROJECT_NOT_FOUND,
      `${dir} is not an Astro project: it has no ${normalize(named)}. Create one with \`astro dev init\`, or pass the project folder.`,
      dockerfilePath,
    );
  }
  const text = await readFile(dockerfilePath, 'utf8');
  return {
    dir,
    dockerfile: rel.split(sep).join('/'),
    dockerfilePath,
    baseImages: dockerfileBaseImages(text),
    config: await readProjectConfig(dir),
  };
}

/**
 * The images a Dockerfile builds `FROM`, in order: line continuations joined, `--platform=`
 * flags skipped, `AS name` dropped, and references to an earlier stage left out (they are not
 * images; the CLI counts them, which only makes it pull less).
 */
export function dockerfileBaseImages(text: string): string[] {
  const images: string[] = [];
  const stages = new Set<string>();
  for (const line of dockerfileInstructions(text)) {
    const m = /^\s*FROM\s+(.*)$/i.exec(line);
    if (!m) continue;
    const words = m[1]!.trim().split(/\s+/).filter((w) => !w.startsWith('--'));
    const image = words[0];
    if (!image) continue;
    if (!stages.has(image.toLowerCase())) images.push(image);
    if (words.length >= 3 && words[1]!.toLowerCase() === 'as') stages.add(words[2]!.toLowerCase());
  }
  return images;
}

/**
 * A Dockerfile's instructions, one logical line each: parser directives read (`# escape=` may
 * change the line-continuation character), continuations joined, comment lines dropped, as the
 * Dockerfile parser does. Heredoc bodies are not recognised: their lines come out as lines.
 */
export function dockerfileInstructions(text: string): string[] {
  // Parser directives (`# escape=...`) come first, before any other line; one may change the
  // line-continuation character.
  let escape = '\\';
  for (const raw of text.split(/\r?\n/)) {
    const directive = /^\s*#\s*([a-z]+)\s*=\s*(\S+)\s*$/i.exec(raw);
    if (!directive) break;
    if (directive[1]!.toLowerCase() === 'escape') escape = directive[2]!;
  }
  const lines: string[] = [];
  let current = '';
  for (const raw of text.split(/\r?\n/)) {
    if (current === '' && /^\s*#/.test(raw)) continue;
    const trimmedEnd = raw.replace(/\s+$/, '');
    if (trimmedEnd.endsWith(escape)) {
      current += trimmedEnd.slice(0, -1) + ' ';
      continue;
    }
    // A comment line inside a continuation is dropped, as the Dockerfile parser does.
    if (current !== '' && /^\s*#/.test(raw)) continue;
    lines.push(current + raw);
    current = '';
  }
  if (current) lines.push(current);
  return lines;
}

/**
 * The CLI's rule for `pull: 'auto'`: pull only when there is a base image and every one of them
 * is an Astro Runtime image (`quay.io/astronomer/...` or `astrocrpublic.azurecr.io/...`), whose
 * tags Astronomer republishes with fixes; a user's own base image is used as the daemon has it.
 */
export function shouldPullBaseImages(baseImages: readonly string[]): boolean {
  return baseImages.length > 0 && baseImages.every((image) => ASTRO_BASE_IMAGE_PREFIXES.some((prefix) => image.startsWith(prefix)));
}

/**
 * Read `.astro/config.yaml` of a project: `project.deployment` and `project.name`. A missing file
 * gives `{}`. Only the block-style mapping that `astro` writes is understood; anything else in
 * the file is ignored.
 */
export async function readProjectConfig(projectDir: string): Promise<ProjectConfig> {
  const text = await readFile(join(resolve(projectDir), PROJECT_CONFIG_FILE), 'utf8').catch(() => undefined);
  return text === undefined ? {} : parseProjectConfig(text);
}

function scalar(raw: string): string | undefined {
  let value = raw.trim();
  if (value.startsWith('"')) {
    const end = value.indexOf('"', 1);
    return end > 0 ? JSON.parse(value.slice(0, end + 1)) as string : undefined;
  }
  if (value.startsWith("'")) {
    const m = /^'((?:[^']|'')*)'/.exec(value);
    return m ? m[1]!.replace(/''/g, "'") : undefined;
  }
  value = value.replace(/\s+#.*$/, '').trim();
  return value === '' || value === '~' || value === 'null' ? undefined : value;
}

/**
 * The `project:` mapping of a `.astro/config.yaml` text (see {@link readProjectConfig}).
 * @internal exported for tests.
 */
export function parseProjectConfig(text: string): ProjectConfig {
  const out: ProjectConfig = {};
  let inProject = false;
  let childIndent: number | undefined;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*(#.*)?$/.test(raw)) continue;
    const indent = raw.length - raw.trimStart().length;
    const m = /^(\s*)([A-Za-z0-9_.-]+)\s*:(?:\s+(.*))?\s*$/.exec(raw);
    if (indent === 0) {
      inProject = m?.[2] === 'project' && (m[3] === undefined || m[3].startsWith('#'));
      childIndent = undefined;
      continue;
    }
    if (!inProject || !m) continue;
    childIndent ??= indent;
    if (indent !== childIndent) continue;
    const value = m[3] === undefined ? undefined : scalar(m[3]);
    if (value === undefined) continue;
    if (m[2] === 'deployment') out.deployment = value;
    else if (m[2] === 'name') out.name = value;
  }
  return out;
}
