/**
 * The deploy flows' bundle options: what `deployDags`, `deployImage`, `deployProject` and the
 * `...ToMany` flows hand to `createBundle` when they bundle a dags folder, and refuse with a
 * bundle that is already made.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkDagsSource } from '../../src/client/bundle-source.js';
import { bundleDags, type DeployBundleOptions } from '../../src/client/deploy-common.js';
import { cleanupTemp, makeTree } from './helpers.js';

afterAll(cleanupTemp);

describe('ignoredNonPython in the deploy flows', () => {
  it('is passed to createBundle, and refused with a bundle already made', async () => {
    const root = await makeTree({ '.airflowignore': 'sql/\n', 'etl.py': 'from airflow import DAG\n', 'sql/load.sql': 'SELECT 1;\n', 'sql/gen.py': '' });
    const options: DeployBundleOptions = { ignoredNonPython: 'ship' };
    const bundle = await bundleDags(root, options, 'glob', undefined, () => {});
    expect(bundle.manifest.files.map((f) => f.path)).toEqual(['.airflowignore', 'etl.py', 'sql/load.sql']);
    expect(() => checkDagsSource({ bundle, ignoredNonPython: 'ship' }, true)).toThrow(/ignoredNonPython shape a bundle while it is made/);
    await bundle.cleanup();
  });
});
