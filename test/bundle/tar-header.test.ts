/**
 * The direct USTAR encoder writes exactly node-tar's header bytes wherever it accepts a member,
 * and declines the members node-tar would split or give a PAX record.
 */
import { Header } from 'tar';
import { describe, expect, it } from 'vitest';
import { encodeSimpleHeader } from '../../src/bundle/tar-header.js';

function nodeTar(name: string, type: 'File' | 'SymbolicLink', size: number, mode: number, mtimeSeconds: number, linkpath = ''): { block: Buffer; needPax: boolean } {
  const block = Buffer.alloc(512);
  const header = new Header({ path: name, mode, uid: 0, gid: 0, size, mtime: new Date(mtimeSeconds * 1000), type, linkpath, uname: '', gname: '' });
  const needPax = header.encode(block, 0);
  return { block, needPax };
}

describe('encodeSimpleHeader', () => {
  const names = ['a', 'dags/dag.py', 'dags/team_1/dag_1.py', 'dags/with space/and-dash_+=.sql', `dags/${'x'.repeat(94)}`, 'dags/tab\there'];
  const sizes = [0, 1, 511, 512, 5000, 256 * 1024, 0o7777777777, 0o77777777777];
  const times = [0, 1, 1_700_000_000, 0o7777777777, 0o77777777777];
  const modes = [0o644, 0o755, 0o777];

  it('writes node-tar bytes for short ASCII names, every size, time and mode in range, files and links', () => {
    const block = Buffer.alloc(512, 0xaa); // stale content must not leak
    let checked = 0;
    for (const name of names) {
      for (const size of sizes) {
        for (const t of times) {
          for (const mode of modes) {
            expect(encodeSimpleHeader(block, 0, name, '0', size, mode, t)).toBe(true);
            expect(block.equals(nodeTar(name, 'File', size, mode, t).block)).toBe(true);
            checked++;
          }
        }
      }
      expect(encodeSimpleHeader(block, 0, name, '2', 0, 0o777, 1_700_000_000, '../target/file.py')).toBe(true);
      expect(block.equals(nodeTar(name, 'SymbolicLink', 0, 0o777, 1_700_000_000, '../target/file.py').block)).toBe(true);
    }
    expect(checked).toBe(names.length * sizes.length * times.length * modes.length);
    // At an offset, touching only its 512 bytes.
    const big = Buffer.alloc(2048, 0xaa);
    expect(encodeSimpleHeader(big, 700, 'dags/dag.py', '0', 42, 0o644, 1_700_000_000)).toBe(true);
    expect(big.subarray(700, 1212).equals(nodeTar('dags/dag.py', 'File', 42, 0o644, 1_700_000_000).block)).toBe(true);
    expect(big.subarray(0, 700).every((b) => b === 0xaa) && big.subarray(1212).every((b) => b === 0xaa)).toBe(true);
  });

  it('declines what node-tar splits or extends with PAX: long or non-ASCII names and targets, out-of-range numbers', () => {
    const block = Buffer.alloc(512);
    expect(encodeSimpleHeader(block, 0, `dags/${'x'.repeat(95)}`, '0', 1, 0o644, 1)).toBe(false); // 100 bytes: prefix split
    expect(encodeSimpleHeader(block, 0, 'dags/été.py', '0', 1, 0o644, 1)).toBe(false);
    expect(nodeTar('dags/été.py', 'File', 1, 0o644, 1).needPax).toBe(true);
    expect(encodeSimpleHeader(block, 0, 'dags/l', '2', 0, 0o777, 1, 'x'.repeat(100))).toBe(false);
    expect(encodeSimpleHeader(block, 0, 'dags/l', '2', 0, 0o777, 1, 'cible-é')).toBe(false);
    expect(encodeSimpleHeader(block, 0, 'dags/big', '0', 0o77777777777 + 1, 0o644, 1)).toBe(false);
    expect(nodeTar('dags/big', 'File', 0o77777777777 + 1, 0o644, 1).needPax).toBe(true);
    expect(encodeSimpleHeader(block, 0, 'dags/old', '0', 1, 0o644, -1)).toBe(false);
    expect(encodeSimpleHeader(block, 0, 'dags/future', '0', 1, 0o644, 0o77777777777 + 1)).toBe(false);
  });
});
