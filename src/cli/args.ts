/**
 * Commands, their flags and their help, parsed with `node:util` `parseArgs` (strict: an unknown
 * flag or a missing value is a usage error). No prompt, ever: what is not given has a default or
 * is an error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './exit-codes.js';

/** One flag of a command. */
interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder of the value in the help. */
  value?: string;
  /** Allowed values (checked here, so a typo is a usage error before any request). */
  choices?: readonly string[];
  help: string;
}

type Flags = Record<string, FlagSpec>;

const OUTPUT: Flags = {
  json: { type: 'boolean', help: 'NDJSON on stdout: one line per SDK event, then a last "result" or "error" line' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress; errors only (with --json: the last line only)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

const TARGET: Flags = {
  'deployment-id': { type: 'string', value: 'id', help: 'the deployment to act on' },
  'deployment-name': { type: 'string', value: 'name', help: 'the deployment, by name (an ambiguous name is an error listing the candidates)' },
  'workspace-id': { type: 'string', value: 'id', help: 'with --deployment-name: look in this workspace only' },
  'project-dir': { type: 'string', value: 'dir', help: 'the Astro project; its .astro/config.yaml project.deployment is the default deployment (default: .)' },
};

const WAIT: Flags = {
  wait: { type: 'boolean', help: 'wait until the deployment runs this deploy' },
  'wait-timeout': { type: 'string', value: 'duration', help: 'longest wait: 90s, 10m, 1h or seconds (implies --wait; default 10m)' },
  'verify-dags': { type: 'boolean', help: "after the rollout, ask the deployment's Airflow for import errors in the shipped files; any fails the run, exit 4 (implies --wait)" },
};

const DEPLOY: Flags = {
  description: { type: 'string', value: 'text', help: 'shown with the deploy in the Astro UI' },
  ...WAIT,
  git: { type: 'string', value: 'auto|none', choices: ['auto', 'none'], help: "git metadata of the deploy from the project's repository (default: none)" },
  'dry-run': { type: 'boolean', help: 'plan the deploy and send nothing but reads' },
  'skip-unchanged': { type: 'boolean', help: 'skip the deploy when the deployment already runs the same code (exit 0)' },
};

const TESTS: Flags = {
  tests: { type: 'string', value: 'mode', choices: ['parse', 'pytest', 'parse+pytest', 'none'], help: 'tests run in the image before anything is created' },
  force: { type: 'boolean', short: 'f', help: 'skip the tests' },
};

/** A command of the CLI. */
export interface CommandSpec {
  /** `dags`, `dag-deploy`, `deployments`, ... */
  name: string;
  /** Subcommands (`enable|disable`, `list`): the first positional must be one of them. */
  subcommands?: readonly string[];
  summary: string;
  usage: string;
  /** More text for the help, after the usage line. */
  details?: string;
  flags: Flags;
}

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'dags',
    summary: 'deploy a dags folder (a DAG-only deploy)',
    usage: 'astro-deploy dags [--deployment-id id | --deployment-name name] [--dags-dir dir] [flags]',
    details: 'Bundles the folder with its .airflowignore rules, uploads it (resumable), finalizes once.',
    flags: {
      'dags-dir': { type: 'string', value: 'dir', help: 'the dags folder (default: <project-dir>/dags)' },
      ...TARGET,
      ...DEPLOY,
      'enable-dag-deploy': { type: 'boolean', help: 'turn DAG deploys on first when they are off, and deploy at once' },
      ...OUTPUT,
    },
  },
  {
    name: 'image',
    summary: 'deploy a built image (a daemon image or a docker save / OCI archive)',
    usage: 'astro-deploy image --image <name|archive> [--deployment-id id] [--dags-dir dir] [flags]',
    details: 'With --dags-dir and DAG deploys on, the DAGs ship as a bundle with the image.',
    flags: {
      image: { type: 'string', value: 'name|archive', help: 'local image name or ID, or a path to a docker save / OCI-layout archive (required)' },
      'dags-dir': { type: 'string', value: 'dir', help: 'ship this dags folder with the image (DAG deploys on), or run the tests on it' },
      ...TARGET,
      ...DEPLOY,
      ...TESTS,
      ...OUTPUT,
    },
  },
  {
    name: 'project',
    summary: 'build an Astro project and deploy it (astro deploy)',
    usage: 'astro-deploy project [--project-dir dir] [--deployment-id id] [flags]',
    details: 'Build (linux/amd64, Docker daemon), checks, tests (default: parse), and only then the deploy.',
    flags: {
      'push-method': {
        type: 'string',
        value: 'auto|native|daemon',
        choices: ['auto', 'native', 'daemon'],
        help: "how the image is pushed (default: auto; native on ephemeral runners and slow links)",
      },
      ...TARGET,
      ...DEPLOY,
      ...TESTS,
      ...OUTPUT,
    },
  },
  {
    name: 'dag-deploy',
    subcommands: ['enable', 'disable'],
    summary: 'turn DAG deploys on or off for a deployment',
    usage: 'astro-deploy dag-deploy enable|disable [--deployment-id id] [flags]',
    details: 'Enabling removes the DAGs baked into the image until the next DAG deploy; disabling removes DAG-deployed DAGs until the next image deploy.',
    flags: {
      ...TARGET,
      force: { type: 'boolean', short: 'f', help: 'change a CI/CD-enforced deployment with a user token' },
      ...OUTPUT,
    },
  },
  {
    name: 'wait',
    summary: 'wait until a deployment runs a deploy and is healthy',
    usage: 'astro-deploy wait [--deployment-id id] [--deploy-id id] [--wait-timeout duration] [flags]',
    details: 'Without --deploy-id: until the deployment is healthy (HEALTHY or HIBERNATING).',
    flags: {
      'deploy-id': { type: 'string', value: 'id', help: 'the deploy to wait for (its image tag and DAG version)' },
      'wait-timeout': WAIT['wait-timeout']!,
      'verify-dags': { type: 'boolean', help: "then ask the deployment's Airflow for import errors; any fails the run (exit 4)" },
      ...TARGET,
      ...OUTPUT,
    },
  },
  {
    name: 'deployments',
    subcommands: ['list'],
    summary: 'list the deployments the token can see',
    usage: 'astro-deploy deployments list [--workspace-id id] [flags]',
    flags: {
      'workspace-id': { type: 'string', value: 'id', help: 'only this workspace' },
      ...OUTPUT,
    },
  },
  {
    name: 'rollback',
    summary: 'roll a deployment back to an earlier deploy',
    usage: 'astro-deploy rollback [--deployment-id id] [--to deploy-id|previous] [flags]',
    flags: {
      to: { type: 'string', value: 'deploy-id|previous', help: 'the deploy to go back to (default: previous)' },
      description: DEPLOY.description!,
      ...WAIT,
      ...TARGET,
      ...OUTPUT,
    },
  },
  {
    name: 'demo',
    summary: 'deploy sample DAGs to an embedded fake Astro, with faults to recover from (no token needed)',
    usage: 'astro-deploy demo [--dags-dir dir] [flags]',
    details: 'Starts the fake Astro of astro-deploy-sdk/testing on 127.0.0.1, injects a 503, a connection reset and a lost finalize answer, and runs the DAG deploy against it.',
    flags: {
      'dags-dir': { type: 'string', value: 'dir', help: 'deploy this folder instead of the built-in sample DAGs' },
      ...OUTPUT,
    },
  },
];

/** What was asked for. */
export type Invocation =
  | { kind: 'help'; command?: CommandSpec }
  | { kind: 'version' }
  | { kind: 'run'; command: CommandSpec; subcommand?: string; values: Record<string, string | boolean | undefined> };

/** Parse `argv` (without `node` and the script). Throws {@link UsageError}. */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') return { kind: 'help' };
  if (first === '--version' || first === '-v') return { kind: 'version' };
  if (first === 'help') {
    if (rest[0] === undefined) return { kind: 'help' };
    return { kind: 'help', command: commandNamed(rest[0]) };
  }
  const command = commandNamed(first);
  const config: ParseArgsConfig = {
    args: [...rest],
    strict: true,
    allowPositionals: true,
    options: Object.fromEntries(
      Object.entries(command.flags).map(([name, f]) => [name, { type: f.type, ...(f.short ? { short: f.short } : {}) }]),
    ),
  };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}`, command.name);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) return { kind: 'help', command };

  const positionals = [...parsed.positionals];
  let subcommand: string | undefined;
  if (command.subcommands) {
    subcommand = positionals.shift();
    if (subcommand === undefined) throw new UsageError(`${command.name} needs one of: ${command.subcommands.join(', ')}.`, command.name);
    if (!command.subcommands.includes(subcommand)) {
      throw new UsageError(`Unknown ${command.name} subcommand '${subcommand}': use one of ${command.subcommands.join(', ')}.`, command.name);
    }
  }
  if (positionals.length > 0) throw new UsageError(`Unexpected argument '${positionals[0]}'.`, command.name);

  for (const [name, spec] of Object.entries(command.flags)) {
    const value = values[name];
    if (typeof value === 'string' && spec.choices && !spec.choices.includes(value)) {
      throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}; got '${value}'.`, command.name);
    }
    if (typeof value === 'string' && value.trim() === '' && name !== 'description') {
      throw new UsageError(`--${name} needs a value.`, command.name);
    }
  }
  return { kind: 'run', command, ...(subcommand ? { subcommand } : {}), values };
}

function commandNamed(name: string): CommandSpec {
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    throw new UsageError(
      name.startsWith('-') ? `Give a command before the flags (${name}).` : `Unknown command '${name}'. Commands: ${COMMANDS.map((c) => c.name).join(', ')}.`,
    );
  }
  return command;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * `90s`, `10m`, `1h`, `1500ms`, or a number of seconds, in milliseconds. `command` is the command
 * the flag was given to, whose help a usage error points at.
 */
export function parseDuration(flag: string, text: string, command: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new UsageError(`--${flag} takes a duration such as 90s, 10m, 1h or a number of seconds; got '${text}'.`, command);
  const ms = Number(m[1]) * UNITS[m[2] ?? 's']!;
  if (!(ms > 0) || !Number.isFinite(ms)) throw new UsageError(`--${flag} must be more than 0; got '${text}'.`, command);
  return Math.round(ms);
}

/** The help of the CLI, or of one command. */
export function helpText(command?: CommandSpec): string {
  if (!command) {
    const width = Math.max(...COMMANDS.map((c) => c.name.length + (c.subcommands ? c.subcommands.join('|').length + 1 : 0)));
    return [
      'astro-deploy: deploy Apache Airflow code to Astronomer Astro (astro-deploy-sdk)',
      '',
      'Usage: astro-deploy <command> [flags]',
      '',
      'Commands:',
      ...COMMANDS.map((c) => `  ${`${c.name}${c.subcommands ? ` ${c.subcommands.join('|')}` : ''}`.padEnd(width + 2)}${c.summary}`),
      '',
      'Environment: ASTRO_API_TOKEN (an Organization, Workspace or Deployment API token), ASTRO_API_URL (API base URL).',
      'Exit codes: 0 done (or skipped as unchanged), 1 failed, 2 usage or configuration, 3 rollout failed or timed out,',
      '            4 the DAGs do not import (tests gate, --verify-dags), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).',
      '',
      'Run astro-deploy <command> --help for its flags.',
    ].join('\n');
  }
  const flagLabel = (name: string, f: FlagSpec) => `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` <${f.value ?? 'value'}>` : ''}`;
  const entries = Object.entries(command.flags);
  const width = Math.max(...entries.map(([n, f]) => flagLabel(n, f).length));
  return [
    `astro-deploy ${command.name}: ${command.summary}`,
    '',
    `Usage: ${command.usage}`,
    ...(command.details ? ['', command.details] : []),
    '',
    'Flags:',
    ...entries.map(([n, f]) => `  ${flagLabel(n, f).padEnd(width + 2)}${f.help}`),
  ].join('\n');
}
