import { describe, expect, it } from 'vitest';
import { checkRuntimeRules, compareRuntimeVersions, parseRuntimeVersion, airflowMajorOf } from '../../src/image/index.js';

describe('runtime versions', () => {
  it('parses both formats', () => {
    expect(parseRuntimeVersion('12.5.0')).toMatchObject({ format: 'old', core: [12, 5, 0], airflowMajor: 2 });
    expect(parseRuntimeVersion('3.1-17')).toMatchObject({ format: 'new', core: [3, 1, 17], airflowMajor: 3 });
    expect(parseRuntimeVersion('3.0-1-rc2')).toMatchObject({ format: 'new', prerelease: ['rc2'] });
    expect(parseRuntimeVersion('v9.1.0')).toMatchObject({ format: 'old', core: [9, 1, 0] });
    expect(parseRuntimeVersion('latest')).toBeUndefined();
    expect(parseRuntimeVersion('')).toBeUndefined();
  });

  it('orders old < new, numerically within a format, pre-releases below releases', () => {
    const sorted = ['3.1-1', '12.5.0', '3.0-7', '2.1.1', '3.0.0', '3.0-7-rc1', '12.10.0', 'junk'].sort(compareRuntimeVersions);
    expect(sorted).toEqual(['junk', '2.1.1', '3.0.0', '12.5.0', '12.10.0', '3.0-7-rc1', '3.0-7', '3.1-1']);
    expect(compareRuntimeVersions('3.1-17', '3.1-17')).toBe(0);
    expect(compareRuntimeVersions('junk', 'other')).toBe(0);
  });

  it('maps runtimes to Airflow majors', () => {
    expect(airflowMajorOf('12.5.0')).toBe(2);
    expect(airflowMajorOf('3.0-1')).toBe(3);
    expect(airflowMajorOf('x')).toBeUndefined();
  });

  it('applies the CLI rules in order', () => {
    expect(checkRuntimeRules('12.1.0', {})).toBeUndefined();
    expect(checkRuntimeRules('12.1.0', { deploymentRuntimeVersion: '12.2.0' })).toMatchObject({ rule: 'downgrade' });
    expect(checkRuntimeRules('12.3.0', { deploymentRuntimeVersion: '12.2.0', allowedRuntimeVersions: ['12.2.0', '12.4.0'] })).toMatchObject({
      rule: 'unsupported',
      allowed: ['12.2.0', '12.4.0'],
    });
    expect(checkRuntimeRules('12.4.0', { deploymentRuntimeVersion: '12.2.0', allowedRuntimeVersions: ['12.4.0'] })).toBeUndefined();
    expect(checkRuntimeRules('3.0-1', { deploymentRuntimeVersion: '11.9.0' })).toMatchObject({ rule: 'airflow3-too-old' });
    expect(checkRuntimeRules('3.0-1', { deploymentRuntimeVersion: '12.0.0' })).toMatchObject({ rule: 'airflow3-not-confirmed' });
    expect(checkRuntimeRules('3.0-1', { deploymentRuntimeVersion: '12.0.0', allowAirflow3Upgrade: true })).toBeUndefined();
    // Within Airflow 3 there is no confirmation to give.
    expect(checkRuntimeRules('3.1-2', { deploymentRuntimeVersion: '3.0-9' })).toBeUndefined();
  });
});
