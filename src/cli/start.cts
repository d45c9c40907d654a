#!/usr/bin/env node
/**
 * The package's `bin`: gives libuv's thread pool a thread per core (up to
 * {@link MAX_CLI_POOL_THREADS}), then loads the CLI (`main.ts`, an ES module, built as `cli.js`).
 *
 * Bundles and image layers are deflated on that pool, one job per thread (`bundle/gzip.ts`,
 * `deflateJobs`), and libuv gives it 4 threads on any machine unless `UV_THREADPOOL_SIZE` says
 * otherwise: on a 16-core runner the CLI would use 4 cores where pigz and skopeo use 16. libuv
 * reads the variable once, when the pool starts, and on Node 20 loading an ES module starts it
 * (its files are read on the pool; Node 22 and later read them without it), so this entry is
 * CommonJS and sets the variable before it imports anything else. A value the user set is kept;
 * on 4 cores or fewer nothing changes.
 */
// CommonJS by necessity (above): TypeScript's form of require under verbatimModuleSyntax.
/* eslint-disable @typescript-eslint/no-require-imports */
import os = require('node:os');
import path = require('node:path');
import url = require('node:url');

/** The most pool threads the CLI asks for: the deflate jobs one stream keeps in flight at most (`MAX_DEFLATE_JOBS`, `bundle/gzip.ts`). */
const MAX_CLI_POOL_THREADS = 16;

if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const cores = os.availableParallelism();
  if (cores > 4) process.env.UV_THREADPOOL_SIZE = String(Math.min(cores, MAX_CLI_POOL_THREADS));
}

import(url.pathToFileURL(path.join(__dirname, 'cli.js')).href).catch((error: unknown) => {
  process.stderr.write(`astro-deploy: could not load the CLI: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1; // ExitCode.FAILED (exit-codes.ts), which this CommonJS file cannot import
});
