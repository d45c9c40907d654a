/**
 * Issue #15 ("Trust"), secrets: what the SDK returns or shows never carries a usable SAS or the
 * API token.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { DeployDagsEvent } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dags-trust-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dag.py'), 'from airflow import DAG\n');
  return dir;
}

/** Every `sig=` value in `text` that is not the redaction placeholder. */
function usableSigs(text: string): string[] {
  return [...text.matchAll(/sig(?:=|%3D|\\u003d)([^&"'\s\\]*)/gi)].map((m) => m[1]!).filter((v) => v !== '[REDACTED]' && v !== '%5BREDACTED%5D');
}

describe('deploy results carry no usable SAS', () => {
  it('deployDags: the result (with its rollout) and the events hold no sig= value', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 20 });
    const events: DeployDagsEvent[] = [];
    const result = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), wait: { pollIntervalMs: 20 }, onEvent: (e) => events.push(e) });
    const issued = astro.deploys('cldep1')[0]!.dagsUploadUrl!;
    const sig = new URL(issued).searchParams.get('sig')!;
    expect(sig.length).toBeGreaterThan(8);
    const text = JSON.stringify(result) + inspect(result, { depth: Infinity }) + JSON.stringify(events);
    expect(usableSigs(text)).toEqual([]);
    expect(text).not.toContain(sig);
    expect(text).not.toContain(encodeURIComponent(sig));
    // Still useful for diagnostics: where the bundle went, without the signature.
    expect(result.deploy.dagsUploadUrl).toContain('/blob/dags/');
    expect(result.deploy.dagsUploadUrl).toContain('sig=[REDACTED]');
  });

  it('waitForRollout: the deploy record it returns holds no usable SAS', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 20 });
    const created = await client.deploys.create('cldep1', { type: 'DAG_ONLY' });
    await client.deploys.finalize('cldep1', created.id, { dagTarballVersion: '' });
    const rollout = await client.waitForRollout({ deploymentId: 'cldep1', deployId: created.id, pollIntervalMs: 20 });
    const sig = new URL(astro.deploys('cldep1')[0]!.dagsUploadUrl!).searchParams.get('sig')!;
    const text = JSON.stringify(rollout);
    expect(rollout.deploy?.id).toBe(created.id);
    expect(usableSigs(text)).toEqual([]);
    expect(text).not.toContain(sig);
  });
});

describe('the client does not show its token', () => {
  it('util.inspect, JSON.stringify and the resources hide the token', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const token = astro.token;
    const signature = token.split('.')[2]!;
    const forms: Record<string, string> = {
      inspect: inspect(client),
      inspectDeep: inspect(client, { depth: Infinity, showHidden: true }),
      inspectNoCustom: inspect(client, { depth: Infinity, showHidden: true, customInspect: false }),
      json: JSON.stringify(client),
      deployments: inspect(client.deployments),
      deploymentsDeep: inspect(client.deployments, { depth: Infinity, showHidden: true, customInspect: false }),
      deploysJson: JSON.stringify(client.deploys),
      options: inspect(client.deploymentOptions, { depth: Infinity, showHidden: true }),
      derived: inspect(client.withOptions({ timeoutMs: 1000 }), { depth: Infinity, showHidden: true, customInspect: false }),
    };
    for (const [name, text] of Object.entries(forms)) {
      expect(text, name).not.toContain(token);
      expect(text, name).not.toContain(signature);
    }
    // Still a useful view.
    expect(forms.inspect).toContain(astro.organizationId);
    expect(forms.json).toContain(astro.organizationId);
    // And the client still works.
    await expect(client.deployments.get('cldep1')).resolves.toMatchObject({ id: 'cldep1' });
  });
});
