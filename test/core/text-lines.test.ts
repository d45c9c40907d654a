/** textLines: the lines of a byte stream, characters whole across chunk boundaries. */
import { describe, expect, it } from 'vitest';
import { textLines } from '../../src/core/text-lines.js';

async function linesOf(chunks: Array<Buffer | string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of textLines((async function* () {
    yield* chunks;
  })())) out.push(line);
  return out;
}

describe('textLines', () => {
  it('keeps a character whole when a chunk ends inside it, at every split of every byte length', async () => {
    const text = '{"stream":"aé€😀"}\n{"status":"done"}\n';
    const bytes = Buffer.from(text, 'utf8');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(await linesOf([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at ${cut}`).toEqual(['{"stream":"aé€😀"}', '{"status":"done"}']);
    }
    // One byte per chunk.
    expect(await linesOf([...bytes].map((b) => Buffer.from([b])))).toEqual(['{"stream":"aé€😀"}', '{"status":"done"}']);
  });

  it('gives the text after the last newline, and nothing for an empty rest; takes strings too', async () => {
    expect(await linesOf([Buffer.from('a\nb')])).toEqual(['a', 'b']);
    expect(await linesOf([Buffer.from('a\n')])).toEqual(['a']);
    expect(await linesOf(['x\n\ny', '\n'])).toEqual(['x', '', 'y']);
    expect(await linesOf([])).toEqual([]);
    // An incomplete character at the very end is one replacement character, not dropped silently.
    expect(await linesOf([Buffer.from([0x61, 0xe2, 0x82])])).toEqual(['a\ufffd']);
  });
});
