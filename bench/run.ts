/**
 * `npm run bench [bundle|deploy-dags|upload|image|project ...]`: runs the benchmarks one after the other (each in its
 * own process, so peak-RSS figures do not mix) and prints their tables. With no argument, all.
 * Benchmarks are not tests: they compare this SDK with its peers (GNU tar, @azure/storage-blob,
 * docker push, skopeo) on this machine and print ratios.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const all = ['bundle', 'deploy-dags', 'upload', 'image', 'project'];
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : all;
let failed = 0;
for (const name of chosen) {
  const file = new URL(`./${name}.ts`, import.meta.url).pathname;
  if (!existsSync(file)) {
    console.error(`unknown benchmark "${name}" (known: ${all.join(', ')})`);
    failed++;
    continue;
  }
  console.log(`\n##### bench/${name}.ts`);
  const res = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  if (res.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
