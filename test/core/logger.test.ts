/**
 * The logger option takes console, winston-style and pino/bunyan-style loggers as they are:
 * `(message, data)` for the first, `(data, message)` for the second, so the data is never lost.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { AstroClient, type Logger } from '../../src/index.js';
import { adaptLogger, levelledLogger } from '../../src/core/logger.js';
import { emitterFor } from '../../src/core/emitter.js';
import { createFakeAstro, TestTokenMinter } from '../../src/testing/index.js';

type Call = [level: string, ...args: unknown[]];

function recorder(extra: Record<string, unknown> = {}): { logger: Logger; calls: Call[] } {
  const calls: Call[] = [];
  const method = (level: string) => (...args: unknown[]) => void calls.push([level, ...args]);
  return { logger: { error: method('error'), warn: method('warn'), info: method('info'), debug: method('debug'), ...extra } as Logger, calls };
}

/** A real pino logger writing JSON lines into `lines`. */
function realPino(lines: Record<string, unknown>[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return pino({ level: 'debug' }, sink);
}

describe('logger adaptation', () => {
  it('calls a console-style logger with (message, data)', () => {
    const { logger, calls } = recorder();
    adaptLogger(logger).warn('retrying', { attempt: 2 });
    adaptLogger(logger).info('plain');
    expect(calls).toEqual([
      ['warn', 'retrying', { attempt: 2 }],
      ['info', 'plain'],
    ]);
  });

  it('calls a pino-like logger (levels.values, child) with (data, message)', () => {
    const { logger, calls } = recorder({ levels: { values: { info: 30 }, labels: { 30: 'info' } }, child: () => logger });
    adaptLogger(logger).warn('retrying', { attempt: 2 });
    expect(calls).toEqual([['warn', { attempt: 2 }, 'retrying']]);
  });

  it('calls a bunyan-like logger (fields, levels(), child) with (data, message)', () => {
    const { logger, calls } = recorder({ fields: { name: 'app' }, levels: () => [30], child: () => logger });
    adaptLogger(logger).error('failed', { code: 'X' });
    expect(calls).toEqual([['error', { code: 'X' }, 'failed']]);
  });

  it('keeps the data of a real pino logger in its fields, redacted', () => {
    const lines: Record<string, unknown>[] = [];
    const token = new TestTokenMinter('clorg1').mint();
    const logger = levelledLogger(realPino(lines), 'debug');
    logger.warn(`retrying with ${token}`, { attempt: 2, header: `Bearer ${token}` });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, attempt: 2, msg: expect.stringContaining('retrying with') });
    expect(JSON.stringify(lines)).not.toContain(token);
  });

  it("notes a listener's exception on a pino logger with the error in its fields", () => {
    const lines: Record<string, unknown>[] = [];
    const emit = emitterFor(() => {
      throw new Error('listener broke');
    }, realPino(lines));
    emit({ type: 'x' });
    expect(lines[0]).toMatchObject({ level: 20, msg: 'a listener threw; ignored', error: 'listener broke' });
  });

  it('takes pino as the client logger (types and runtime): API calls are logged with their fields', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'cldep1', type: 'STANDARD' }] });
    try {
      const lines: Record<string, unknown>[] = [];
      const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, logger: realPino(lines), logLevel: 'info' });
      await client.deployments.get('cldep1');
      const call = lines.find((l) => String(l.msg).startsWith('GET '));
      expect(call).toMatchObject({ level: 30, attempt: 1 });
    } finally {
      await astro.close();
    }
  });

  it('takes console as it is (types)', () => {
    const options: ConstructorParameters<typeof AstroClient>[0] = { logger: console };
    expect(options.logger).toBe(console);
  });
});
