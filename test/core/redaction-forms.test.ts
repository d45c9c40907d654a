/**
 * Issue #15 ("Trust"): a registered secret is redacted in the encoded forms it travels in, not
 * only verbatim, and a SAS `sig=` is caught wherever it starts.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { REDACTED, redact, redactDeep, registerSecret } from '../../src/core/redact.js';

/** A fresh secret with the characters that encodings change: space, `+`, `/`, `=`, `~`, `*`. */
function awkwardSecret(): string {
  return `Zq${randomBytes(6).toString('hex')}+/ab=cd ef~*(x)/${randomBytes(4).toString('hex')}==`;
}

function formsOf(secret: string): Record<string, string> {
  const upper = encodeURIComponent(secret);
  return {
    verbatim: secret,
    percentUpper: upper,
    percentLower: upper.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    formEncoded: new URLSearchParams({ v: secret }).toString().slice(2),
    formEncodedLower: new URLSearchParams({ v: secret }).toString().slice(2).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    jsonSlashes: JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'),
    base64: Buffer.from(secret).toString('base64'),
    base64NoPad: Buffer.from(secret).toString('base64').replace(/=+$/, ''),
    base64url: Buffer.from(secret).toString('base64url'),
  };
}

describe('registerSecret covers encoded forms', () => {
  const secret = awkwardSecret();
  registerSecret(secret);
  for (const [name, form] of Object.entries(formsOf(secret))) {
    it(`redacts the ${name} form`, () => {
      expect(form.length).toBeGreaterThan(8);
      const out = redact(`upstream said: ${form} (end)`);
      expect(out).not.toContain(form);
      expect(out).toContain(REDACTED);
      expect(out).toMatch(/^upstream said: .*\(end\)$/);
      // And inside structured payloads (events, log records).
      expect(JSON.stringify(redactDeep({ nested: { text: `x ${form} y` } }))).not.toContain(form);
    });
  }

  it('redacts the signature segment of a registered JWT on its own', () => {
    const signature = randomBytes(32).toString('base64url');
    const jwt = `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'x', n: randomBytes(4).toString('hex') })).toString('base64url')}.${signature}`;
    registerSecret(jwt);
    const out = redact(`the server echoed the signature ${signature} only`);
    expect(out).not.toContain(signature);
    expect(out).toBe(`the server echoed the signature ${REDACTED} only`);
  });

  it('does not register tiny fragments or mangle ordinary text', () => {
    registerSecret('short');
    expect(redact('a short text with sig in it and a signature=none')).toBe('a short text with sig in it and a signature=none');
  });
});

describe('sig= outside a query string', () => {
  it('redacts sig= after whitespace, at the start, after a quote and after a semicolon', () => {
    const value = `Q${randomBytes(10).toString('base64url')}`; // never registered
    for (const text of [`bad request: sig=${value} expired`, `sig=${value}&se=2026`, `{"detail":"sig=${value}"}`, `params; sig=${value}`, `\tsig=${value}\n`]) {
      const out = redact(text);
      expect(out, text).not.toContain(value);
      expect(out, text).toContain(`sig=${REDACTED}`);
    }
  });

  it('keeps the query-string form working and leaves words ending in sig alone', () => {
    expect(redact('https://a.blob.core.windows.net/c/b?sv=1&sig=abc%2Bdef&se=2')).toBe(`https://a.blob.core.windows.net/c/b?sv=1&sig=${REDACTED}&se=2`);
    expect(redact('config: xsig=visible')).toBe('config: xsig=visible');
  });
});
