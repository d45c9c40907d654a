/**
 * A loopback proxy that flips one byte in the body of chosen upload requests, after their headers
 * (and so their Content-MD5) went through unchanged: the in-flight corruption that per-block
 * digests exist to catch. Everything else is forwarded as is.
 */
import { createServer, request, type IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { blobRouteOf } from '../../src/testing/fault-proxy.js';
import { listenOnLoopback } from '../../src/testing/loopback.js';

export interface CorruptingProxy {
  url: string;
  /** Requests whose body had a byte flipped so far. */
  corrupted: number;
  close(): Promise<void>;
}

/**
 * Forward to `target`; `shouldCorrupt(route, n)` (n: 1-based count of that route's requests) picks
 * the requests whose body byte at `atByte` is inverted.
 */
export async function startCorruptingProxy(
  target: string,
  shouldCorrupt: (route: string, n: number) => boolean,
  atByte = 1000,
): Promise<CorruptingProxy> {
  const upstream = new URL(target);
  const seen = new Map<string, number>();
  const state = { corrupted: 0 };
  const server = createServer((req: IncomingMessage, res) => {
    const route = blobRouteOf(req.method ?? 'GET', new URL(req.url ?? '/', 'http://x'));
    const n = (seen.get(route) ?? 0) + 1;
    seen.set(route, n);
    const corrupt = shouldCorrupt(route, n);
    if (corrupt) state.corrupted += 1;
    let at = 0;
    const flip = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        if (corrupt && atByte >= at && atByte < at + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[atByte - at] = chunk[atByte - at]! ^ 0xff;
        }
        at += chunk.length;
        cb(null, chunk);
      },
    });
    const up = request({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(flip).pipe(up);
  });
  const listener = await listenOnLoopback(server);
  return {
    url: listener.origin,
    get corrupted() {
      return state.corrupted;
    },
    close: listener.close,
  };
}
