import { describe, expect, it } from 'vitest';
import { ignoreSyntaxForAirflow, ignoreSyntaxForRuntime } from '../../src/bundle/index.js';

describe('ignore syntax from the target version', () => {
  it('maps Astro Runtime versions: semver runtimes are Airflow 2, X.Y-Z runtimes carry the Airflow version', () => {
    expect(ignoreSyntaxForRuntime('3.0.0')).toBe('regexp'); // Runtime 3.0.0 shipped Airflow 2.1
    expect(ignoreSyntaxForRuntime('9.1.0')).toBe('regexp');
    expect(ignoreSyntaxForRuntime('12.5.0')).toBe('regexp');
    expect(ignoreSyntaxForRuntime('12.5.0-base')).toBe('regexp');
    expect(ignoreSyntaxForRuntime('3.0-1')).toBe('glob');
    expect(ignoreSyntaxForRuntime('3.1-4-python-3.12')).toBe('glob');
    expect(ignoreSyntaxForRuntime(' v3.0-2 ')).toBe('glob');
  });

  it('defaults to glob when the version is unknown', () => {
    expect(ignoreSyntaxForRuntime(undefined)).toBe('glob');
    expect(ignoreSyntaxForRuntime('')).toBe('glob');
    expect(ignoreSyntaxForRuntime('latest')).toBe('glob');
  });

  it('maps Airflow versions by major', () => {
    expect(ignoreSyntaxForAirflow('2.10.5')).toBe('regexp');
    expect(ignoreSyntaxForAirflow('3.0.2')).toBe('glob');
    expect(ignoreSyntaxForAirflow('3.1.0+astro.1')).toBe('glob');
    expect(ignoreSyntaxForAirflow(undefined)).toBe('glob');
  });
});
