/**
 * The main job: deploy examples/dags as a DAG-only deploy against the embedded fake Astro, with
 * progress on the terminal. The fake answers a 408 to one upload block and drops the response of
 * the finalize call, to show the deploy recovering from both.
 *
 *   npx tsx examples/deploy-with-fake.ts
 *
 * (`npm run demo` runs the CLI's own demo instead, `astro-deploy demo` from src/cli/demo.ts: a
 * similar deploy of its sample DAGs to the fake, rendered by the CLI.)
 *
 * Against the real Astro, remove the fake and set ASTRO_API_TOKEN; the rest is the same.
 */
import { fileURLToPath } from 'node:url';
import { AstroClient, isAstroError, type DeployDagsEvent } from 'astro-deploy-sdk';
import { createFakeAstro } from 'astro-deploy-sdk/testing';

const dagsDir = fileURLToPath(new URL('./dags', import.meta.url));
const deploymentId = 'clexampledeployment000001';

function render(event: DeployDagsEvent): string | undefined {
  switch (event.type) {
    case 'deploy:checked':
      return `checked deployment ${event.deploymentId} (runtime ${event.runtimeVersion}, .airflowignore syntax ${event.syntax})`;
    case 'bundle:scan-complete':
      return `bundle: ${event.totalFiles} files to pack, ${event.excluded} excluded, ${event.kept} kept`;
    case 'bundle:warning':
      return `bundle warning [${event.warning.code}]: ${event.warning.message}`;
    case 'bundle:complete':
      return `bundle: ${event.files} files, ${event.contentBytes} bytes -> ${event.bytes} bytes gzipped, fingerprint ${event.fingerprint.slice(0, 12)}…`;
    case 'deploy:created':
      return `deploy ${event.deployId} created`;
    case 'upload:start':
      return `upload: ${event.totalBytes} bytes as ${event.mode === 'single' ? 'one Put Blob' : `${event.blockSizeBytes}-byte blocks`}`;
    case 'upload:progress':
      return `upload: ${Math.round((100 * event.bytesAcked) / event.totalBytes)}% (${event.bytesAcked}/${event.totalBytes})`;
    case 'upload:retry':
      return `upload: retry ${event.attempt} of ${event.phase}${event.blockIndex !== undefined ? ` #${event.blockIndex}` : ''} after ${event.cause}, in ${event.delayMs} ms`;
    case 'upload:block-size':
      return `upload: block size ${event.fromBytes} -> ${event.toBytes} (${event.reason})`;
    case 'upload:committed':
      return `upload: committed version ${event.versionId}`;
    case 'deploy:finalize-recovered':
      return `finalize: answer lost (${event.reason}); the deploy record shows it took`;
    case 'deploy:finalized':
      return `deploy ${event.deployId} finalized with DAG version ${event.dagTarballVersion}`;
    case 'rollout:change':
      return `rollout: ${event.snapshot.deploymentStatus} (current ${event.snapshot.dagTarballVersion ?? '-'}, desired ${event.snapshot.desiredDagTarballVersion ?? '-'})`;
    case 'rollout:complete':
      return `rollout: done after ${event.snapshot.polls} polls, ${event.snapshot.elapsedMs} ms`;
    case 'api:retry':
      return `api: retry ${event.attempt} of ${event.method} ${event.path} (${event.errorCode})`;
    default:
      return undefined;
  }
}

const astro = await createFakeAstro({
  deployments: [{ id: deploymentId, name: 'analytics', runtimeVersion: '3.1-2' }],
  rolloutDelayMs: 1500,
});
astro.fail({ route: 'blob.putBlock', nth: 2, action: { kind: 'status', status: 408, afterBodyBytes: 64 } });
astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });

try {
  const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
  const result = await client.deployDags({
    deploymentId,
    dagsDir,
    description: 'example deploy',
    wait: { pollIntervalMs: 300 },
    // Tiny blocks so that the example shows a multi-block upload; defaults adapt to the link.
    upload: { blockSizeBytes: 160, minBlockSizeBytes: 96, singleShotMaxBytes: 128, journalDir: false },
    onEvent: (event) => {
      const line = render(event);
      if (line) console.log(line);
    },
  });
  console.log(`\nrolled out: deployment runs DAG version ${result.rollout?.deployment.dagTarballVersion}`);
  console.log(`files shipped: ${result.bundle.manifest.files.map((f) => f.path).join(', ')}`);
} catch (error) {
  console.error(isAstroError(error) ? `${error.code}: ${error.message}` : error);
  process.exitCode = 1;
} finally {
  if (process.env.DEMO_DEBUG) console.log(astro.requests.map((r) => `${r.route} ${r.status} ${r.fault ?? ""}`).join("\n"));
  await astro.close();
}
