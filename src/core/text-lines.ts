/**
 * The lines of a byte stream (JSON-lines answers of the Docker Engine API, process output): bytes
 * are decoded as UTF-8 across chunk boundaries, so a character split between two chunks arrives
 * whole instead of as two replacement characters.
 */
import { StringDecoder } from 'node:string_decoder';

/** Each line of `stream`, without its `\n`; the text after the last `\n` last, when not empty. */
export async function* textLines(stream: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of stream) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  pending += decoder.end();
  if (pending !== '') yield pending;
}
