/**
 * Starting and stopping the test servers (fake Astro, fake blob service, fault proxy): each
 * listens on 127.0.0.1 with a free port and, when closed, drops its open connections at once so
 * a test never waits on a keep-alive socket.
 */
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A server listening on 127.0.0.1. */
export interface LoopbackListener {
  /** The port it was given. */
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** Count another socket (an upstream connection, say) among those `close()` destroys. */
  track(socket: Socket): void;
  /** Destroy every tracked socket and stop listening. */
  close(): Promise<void>;
}

/** Listen on 127.0.0.1 with a free port, tracking every connection for {@link LoopbackListener.close}. */
export async function listenOnLoopback(server: Server): Promise<LoopbackListener> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    track,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
