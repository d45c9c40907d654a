/**
 * The typedoc site (`npm run docs`): the main entry's exports are grouped (Client, Flows, Events,
 * Errors, Schemas) rather than one list per kind, `Deployment` appears by name where the API
 * returns one instead of as an inlined object, and the response fields the SDK relies on carry
 * their docs.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');

interface Reflection {
  id: number;
  name: string;
  children?: Reflection[];
  groups?: Array<{ title: string; children: number[] }>;
  comment?: { summary: Array<{ text: string }> };
  signatures?: Array<{ type: { typeArguments?: Array<{ type: string; name?: string }> } }>;
}

let out: string;
let main: Reflection;

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'astro-sdk-docs-'));
  await run(join(ROOT, 'node_modules/.bin/typedoc'), ['--out', join(out, 'html'), '--json', join(out, 'docs.json'), '--logLevel', 'Error'], {
    cwd: ROOT,
    timeout: 240_000,
  });
  const project = JSON.parse(readFileSync(join(out, 'docs.json'), 'utf8')) as Reflection;
  main = project.children!.find((m) => m.name === 'index')!;
}, 300_000);

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

const named = (name: string) => main.children!.find((c) => c.name === name)!;
const groupOf = (name: string) => main.groups!.find((g) => g.children.includes(named(name).id))?.title;

describe('the typedoc site', () => {
  it('groups the main entry into Client, Flows, Events, Errors and Schemas, in that order', () => {
    expect(main.groups!.map((g) => g.title).slice(0, 5)).toEqual(['Client', 'Flows', 'Events', 'Errors', 'Schemas']);
    expect(groupOf('AstroClient')).toBe('Client');
    expect(groupOf('ClientOptions')).toBe('Client');
    expect(groupOf('DeployDagsParams')).toBe('Flows');
    expect(groupOf('DeployDagsEvent')).toBe('Events');
    expect(groupOf('AstroRolloutError')).toBe('Errors');
    expect(groupOf('isAstroError')).toBe('Errors');
    expect(groupOf('deploymentSchema')).toBe('Schemas');
    expect(groupOf('Deployment')).toBe('Schemas');
  });

  it('shows Deployment by name in the signatures that return one', () => {
    const get = named('DeploymentsResource').children!.find((c) => c.name === 'get')!;
    expect(get.signatures![0]!.type.typeArguments![0]).toMatchObject({ type: 'reference', name: 'Deployment' });
  });

  it('documents the response fields the SDK relies on', () => {
    const text = (r: Reflection, field: string) => (r.children!.find((c) => c.name === field)?.comment?.summary ?? []).map((p) => p.text).join('');
    for (const field of ['id', 'status', 'isDagDeployEnabled', 'isCicdEnforced', 'runtimeVersion', 'dagTarballVersion', 'desiredDagTarballVersion', 'imageTag']) {
      expect(text(named('Deployment'), field), `Deployment.${field}`).not.toBe('');
    }
    for (const field of ['id', 'status', 'dagsUploadUrl', 'dagTarballVersion']) {
      expect(text(named('Deploy'), field), `Deploy.${field}`).not.toBe('');
    }
  });
});
