/**
 * The shape of the Docker Engine API client the SDK calls, written out structurally so that the
 * published types need neither dockerode nor `@types/dockerode`: a `new Dockerode()` (dockerode 5)
 * fits as it is, and so does any object with these methods (a wrapper, a test double).
 */

/** What the SDK reads from `GET /images/{name}/json`. */
export interface DockerImageInspect {
  Id: string;
  Os?: string;
  Architecture?: string;
  Variant?: string;
  Created?: string;
  RepoTags?: string[] | null;
  Config?: { Labels?: Record<string, string> | null } | null;
  RootFS?: { Layers?: string[] } | null;
  /** The manifest or index the image ID names, under the containerd image store (Engine API 1.48 and later). */
  Descriptor?: { mediaType?: string; digest?: string; size?: number } | null;
}

/** An image handle (`docker.getImage(name)`). */
export interface DockerImageLike {
  inspect(): Promise<DockerImageInspect>;
  tag(options: { repo: string; tag: string }): Promise<unknown>;
  /** `POST /images/{name}/push`: resolves with the daemon's JSON-lines progress stream. */
  push(options: { tag: string; authconfig: { username?: string; password?: string; serveraddress: string }; abortSignal?: AbortSignal }): Promise<NodeJS.ReadableStream>;
  /** `GET /images/{name}/get`: the image as a `docker save` tar stream. */
  get(): Promise<NodeJS.ReadableStream>;
  remove(options: { noprune?: boolean; force?: boolean }): Promise<unknown>;
}

/** A container handle (`docker.getContainer(id)`, `docker.createContainer(...)`). */
export interface DockerContainerLike {
  putArchive(archive: NodeJS.ReadableStream, options: { path: string }): Promise<unknown>;
  start(): Promise<unknown>;
  logs(options: { follow: true; stdout: boolean; stderr: boolean }): Promise<NodeJS.ReadableStream>;
  /**
   * `POST /containers/{id}/attach` (dockerode's `attach`): the output as the process writes it.
   * Without it, the output is read back from the container's logs.
   */
  attach?(options: { stream: true; stdout: true; stderr: true }): Promise<NodeJS.ReadableStream>;
  wait(): Promise<unknown>;
  kill(): Promise<unknown>;
  remove(options: { force?: boolean }): Promise<unknown>;
}

/** What the SDK passes to `docker.createContainer` (a subset of the Engine API's create body). */
export interface DockerContainerCreateOptions {
  Image: string;
  Cmd?: string[];
  WorkingDir?: string;
  Env?: string[];
  Labels?: Record<string, string>;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
}

/** The request layer under the client (dockerode's `docker-modem`): raw Engine API calls. */
export interface DockerModemLike {
  /** Send one Engine API request (options as docker-modem's `dial` takes them). */
  dial(options: object, callback: (err: unknown, result: unknown) => void): void;
  /** Split a non-TTY container stream into stdout and stderr. */
  demuxStream(stream: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void;
  /** The Engine API version the client is pinned to, when it is. */
  version?: string | undefined;
}

/**
 * A Docker Engine API client: what the `docker` option of the image functions and flows takes.
 * Pass `new Dockerode({ socketPath })` (or `{ host, port, ca, cert, key }`) to reach a daemon
 * other than `DOCKER_HOST`; without one the SDK creates a dockerode client itself, which needs
 * the optional peer dependency `dockerode` installed (`npm install dockerode`).
 */
export interface DockerLike {
  getImage(name: string): DockerImageLike;
  getContainer(id: string): DockerContainerLike;
  createContainer(options: DockerContainerCreateOptions): Promise<DockerContainerLike>;
  /** `GET /version`. */
  version(): Promise<unknown>;
  modem: DockerModemLike;
}
