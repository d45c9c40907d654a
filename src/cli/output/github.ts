/**
 * GitHub Actions (`GITHUB_ACTIONS=true`): around any renderer, errors become `::error::`
 * annotations and warnings `::warning::` annotations, and the end of the command is appended to
 * the job summary (`GITHUB_STEP_SUMMARY`): deployment, deploy id, type, DAG version, image tag,
 * start and duration. Annotations go to stdout, or to stderr under `--json` (the runner reads workflow commands
 * from both), so `--json` output stays pure NDJSON.
 */
import { appendFileSync } from 'node:fs';
import type { TextOutput } from './gate.js';
import { describeEvent, formatDuration, type SdkEvent } from './format.js';
import { errorCode, errorMessage, type Failure, type Outcome, type Reporter } from './reporter.js';

/** Escape the message of a workflow command, as `@actions/core` does. */
export function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Escape a property (`title=...`) of a workflow command. */
export function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export class GithubReporter implements Reporter {
  constructor(
    private readonly inner: Reporter,
    /** Where annotations go. */
    private readonly commands: TextOutput,
    /** The job summary file, when the runner gave one. */
    private readonly summaryPath: string | undefined,
    private readonly startedAt: Date = new Date(),
  ) {}

  event(event: SdkEvent): void {
    this.inner.event(event);
    const line = describeEvent(event);
    if (line?.level === 'warn') this.commands.write(`::warning title=astro-deploy::${escapeData(line.text)}\n`);
  }

  note(message: string): void {
    this.inner.note(message);
  }

  result(outcome: Outcome): void {
    this.inner.result(outcome);
    this.summary(`### ✅ astro-deploy ${outcome.command}: ${outcome.headline}`, outcome.facts, outcome.table);
  }

  error(failure: Failure): void {
    this.inner.error(failure);
    const code = errorCode(failure.error);
    const message = errorMessage(failure.error);
    const title = `astro-deploy${failure.command ? ` ${failure.command}` : ''} failed (${code}, exit ${failure.exitCode})`;
    this.commands.write(`::error title=${escapeProperty(title)}::${escapeData(message)}\n`);
    this.summary(`### ❌ astro-deploy${failure.command ? ` ${failure.command}` : ''} failed: \`${code}\``, [...failure.facts, ['Error', message], ['Exit code', String(failure.exitCode)]]);
  }

  close(): void {
    this.inner.close();
  }

  private summary(title: string, facts: Array<[string, string]>, listing?: { columns: string[]; rows: string[][] }): void {
    if (!this.summaryPath) return;
    const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
    const rows: Array<[string, string]> = [...facts, ['Started', this.startedAt.toISOString()]];
    if (!facts.some(([k]) => k === 'Duration')) rows.push(['Duration', formatDuration(Date.now() - this.startedAt.getTime())]);
    const lines = [title, '', '| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${cell(k)} | ${cell(v)} |`), ''];
    if (listing) {
      lines.push(`| ${listing.columns.map(cell).join(' | ')} |`, `|${listing.columns.map(() => ' --- |').join('')}`);
      for (const r of listing.rows) lines.push(`| ${r.map(cell).join(' | ')} |`);
      lines.push('');
    }
    try {
      appendFileSync(this.summaryPath, `${lines.join('\n')}\n`);
    } catch (error) {
      this.inner.note(`could not write the job summary to ${this.summaryPath}: ${(error as Error).message}`);
    }
  }
}
