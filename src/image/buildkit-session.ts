/**
 * A BuildKit session over the Engine API, serving build secrets.
 *
 * BuildKit asks the client for secrets (`RUN --mount=type=secret`) while it builds, through a
 * session: the client `POST`s `/session` with `Upgrade: h2c`, names the gRPC methods it serves in
 * `X-Docker-Expose-Session-Grpc-Method` headers, and the daemon then calls them as an HTTP/2 gRPC
 * client over that connection. dockerode opens such a session for BuildKit builds itself, but
 * serves only registry credentials and names no method, so a build through `buildImage` cannot
 * read a secret; this module serves `moby.buildkit.secrets.v1.Secrets/GetSecret` (and the health
 * check the daemon uses to keep the session) with `node:http2`, and the build is sent through
 * dockerode's modem with this session's ID.
 *
 * The two messages are encoded by hand (one bytes field each); no gRPC or protobuf library is
 * needed. Secret values stay in memory for the length of the build and are never logged.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { ErrorCodes, ImageError } from '../core/errors.js';
import { dockerUnavailable, isDockerUnreachable } from './docker.js';
import type { DockerLike } from './docker-like.js';

const SECRETS_METHOD = '/moby.buildkit.secrets.v1.Secrets/GetSecret';
const HEALTH_METHOD = '/grpc.health.v1.Health/Check';

/** gRPC status codes the session answers with. */
const GRPC_OK = 0;
const GRPC_NOT_FOUND = 5;
const GRPC_UNIMPLEMENTED = 12;

/** An open session; close it when the build has ended. */
export interface BuildSession {
  /** Passed to `POST /build` as `session`. */
  readonly id: string;
  /** Secret IDs the daemon asked for so far. */
  readonly requested: readonly string[];
  close(): void;
}

/** One length-delimited protobuf field (wire type 2). */
function bytesField(field: number, data: Buffer): Buffer {
  const len: number[] = [];
  let n = data.length;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    len.push(byte);
  } while (n);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), data]);
}

/** The `ID` (field 1) of a `GetSecretRequest`. */
function secretIdOf(message: Buffer): string | undefined {
  let pos = 0;
  const varint = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = message[pos++];
      if (byte === undefined) throw new RangeError('truncated');
      result += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return result;
      shift += 7;
    }
  };
  try {
    while (pos < message.length) {
      const key = varint();
      const wire = key & 7;
      if (wire === 2) {
        const len = varint();
        const value = message.subarray(pos, pos + len);
        pos += len;
        if (key >>> 3 === 1) return value.toString('utf8');
      } else if (wire === 0) varint();
      else return undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** One gRPC message frame: a compression flag (0), a 4-byte length, the message. */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

function answer(stream: http2.ServerHttp2Stream, status: number, message?: Buffer, detail?: string): void {
  if (stream.destroyed) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => {
    stream.sendTrailers({ 'grpc-status': String(status), ...(detail ? { 'grpc-message': encodeURIComponent(detail) } : {}) });
  });
  stream.end(message ? grpcFrame(message) : undefined);
}

/**
 * Open a session serving `secrets` (ID to value). Resolves once the daemon switched protocols.
 *
 * @throws ImageError `ASTRO_IMAGE_BUILDKIT_UNAVAILABLE` when the daemon does not upgrade the
 *   connection (no BuildKit session support), `ASTRO_IMAGE_DOCKER_UNAVAILABLE` when it does not answer.
 */
export async function openBuildSession(docker: DockerLike, secrets: ReadonlyMap<string, Buffer>, signal?: AbortSignal): Promise<BuildSession> {
  const id = randomUUID();
  let socket: Duplex;
  try {
    socket = await new Promise<Duplex>((resolve, reject) => {
      docker.modem.dial(
        {
          method: 'POST',
          path: '/session',
          hijack: true,
          ...(signal ? { abortSignal: signal } : {}),
          headers: {
            Upgrade: 'h2c',
            'X-Docker-Expose-Session-Uuid': id,
            'X-Docker-Expose-Session-Name': 'astro-deploy-sdk',
            'X-Docker-Expose-Session-Sharedkey': randomBytes(16).toString('hex'),
            'X-Docker-Expose-Session-Grpc-Method': [SECRETS_METHOD, HEALTH_METHOD],
          },
          statusCodes: { 101: true, 200: true, 400: 'bad parameter', 404: 'no session support', 500: 'server error' },
        },
        (err: unknown, sock: unknown) => (err ? reject(err) : resolve(sock as Duplex)),
      );
    });
  } catch (err) {
    if (isDockerUnreachable(err)) throw dockerUnavailable(err, 'open a BuildKit session');
    throw new ImageError(
      ErrorCodes.IMAGE_BUILDKIT_UNAVAILABLE,
      `The Docker daemon refused a BuildKit session (POST /session: ${(err as Error)?.message ?? String(err)}), so build secrets cannot be passed. ` +
        'Use a Docker Engine with BuildKit (18.09 or later, on Linux), or build without buildSecrets.',
      undefined,
      { cause: err },
    );
  }
  // Not a hijacked socket: the daemon answered the upgrade with a plain response.
  if (typeof (socket as { write?: unknown }).write !== 'function' || typeof (socket as { on?: unknown }).on !== 'function') {
    throw new ImageError(
      ErrorCodes.IMAGE_BUILDKIT_UNAVAILABLE,
      'The Docker daemon did not switch the /session connection to HTTP/2, so build secrets cannot be passed. Use a Docker Engine with BuildKit.',
    );
  }

  const requested: string[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path'] ?? '');
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    stream.on('end', () => {
      if (path === HEALTH_METHOD) return answer(stream, GRPC_OK, Buffer.from([0x08, 0x01])); // status: SERVING
      if (path !== SECRETS_METHOD) return answer(stream, GRPC_UNIMPLEMENTED, undefined, `${path} is not served`);
      const body = Buffer.concat(chunks);
      const secretId = body.length >= 5 ? secretIdOf(body.subarray(5, 5 + body.readUInt32BE(1))) : undefined;
      if (secretId !== undefined) requested.push(secretId);
      const value = secretId === undefined ? undefined : secrets.get(secretId);
      if (value === undefined) return answer(stream, GRPC_NOT_FOUND, undefined, `secret ${secretId ?? '(none)'} not found`);
      answer(stream, GRPC_OK, bytesField(1, value));
    });
  });
  server.on('sessionError', () => undefined);
  // The daemon speaks HTTP/2 with prior knowledge on the upgraded connection: hand it to the server.
  server.emit('connection', socket);
  socket.on('error', () => undefined);

  let closed = false;
  return {
    id,
    requested,
    close() {
      if (closed) return;
      closed = true;
      server.close();
      socket.destroy();
    },
  };
}
