/** Every example in examples/ runs against the embedded fake and exits 0. */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('../', import.meta.url).pathname;
const expectations: Record<string, RegExp> = {
  'toggle-dag-deploy.ts': /DAG deploys enabled: true \(changed: true\)[\s\S]*deployment is HEALTHY/,
  'deploy-with-fake.ts': /bundle: \d+ files, \d+ bytes -> \d+ bytes gzipped[\s\S]*deploy .* finalized[\s\S]*rolled out/i,
};

describe('examples', () => {
  const files = readdirSync(`${root}examples`).filter((f) => f.endsWith('.ts'));
  it('has an expectation for every example', () => {
    expect(files.filter((f) => !expectations[f])).toEqual([]);
  });
  for (const file of files) {
    it(`runs examples/${file}`, async () => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', `examples/${file}`], { cwd: root, timeout: 120_000 });
      expect(stdout).toMatch(expectations[file]!);
      // A field the SDK no longer sends shows up as "undefined" or "NaN" in the output.
      expect(stdout).not.toMatch(/\bundefined\b|\bNaN\b/);
    }, 150_000);
  }
});
