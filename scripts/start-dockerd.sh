#!/usr/bin/env bash
# Start a private Docker daemon for the image tests and benchmarks, unless one already answers.
#
# Idempotent: when the private socket already answers `docker version`, nothing is started.
# The daemon listens on a unix socket only (no TCP), uses the vfs storage driver (works inside
# containers without overlayfs), and touches neither iptables nor a bridge, so it needs no
# network privileges beyond root. Loopback registries are plain HTTP; 127.0.0.0/8 is insecure
# by default in Docker, and we say so explicitly so that a changed default cannot break pulls.
#
# On success the last line on stdout is `export DOCKER_HOST=unix:///...`, so a caller can do
#   eval "$(scripts/start-dockerd.sh | tail -n 1)"
# Diagnostics go to stderr. Exit status is non-zero when no daemon could be had.
#
# With ASTRO_SDK_DOCKER_STORE=containerd it starts a second daemon, with Docker's containerd image
# store (Docker Desktop's default, and Docker Engine 29's for new installs), where an image's ID is
# its manifest's digest, not its config's. Debian 12's docker.io (20.10) has no such store, so that
# daemon is Debian 13's docker.io (26.1), fetched once with apt-get from Debian's trixie suite
# (signatures checked against the machine's Debian keyring) into ~/.cache/astro-deploy-sdk, and
# run with the machine's containerd. Its snapshotter is `native` (plain copies, as vfs is).
#
# Environment:
#   ASTRO_SDK_DOCKER_STORE classic or containerd                  default classic
#   ASTRO_SDK_DOCKER_DIR   state directory (socket, data, logs)  default /tmp/astro-sdk-docker,
#                          /tmp/astro-sdk-docker-containerd for the containerd store
#   ASTRO_SDK_DOCKER_WAIT  seconds to wait for the daemon          default 60
set -euo pipefail

store="${ASTRO_SDK_DOCKER_STORE:-classic}"
case "$store" in
  classic) default_dir=/tmp/astro-sdk-docker ;;
  containerd) default_dir=/tmp/astro-sdk-docker-containerd ;;
  *) echo "start-dockerd: ASTRO_SDK_DOCKER_STORE must be classic or containerd, not $store" >&2; exit 1 ;;
esac
dir="${ASTRO_SDK_DOCKER_DIR:-$default_dir}"
wait_s="${ASTRO_SDK_DOCKER_WAIT:-60}"
sock="$dir/docker.sock"
host="unix://$sock"

answers() {
  docker -H "$host" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

if ! command -v docker >/dev/null 2>&1; then
  echo "start-dockerd: the docker CLI is not installed (apt-get install -y docker.io)" >&2
  exit 1
fi

if answers; then
  echo "start-dockerd: daemon already answering on $host" >&2
  echo "export DOCKER_HOST=$host"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-dockerd: dockerd is not installed (apt-get install -y docker.io)" >&2
  exit 1
fi
if [ "$(id -u)" != "0" ]; then
  echo "start-dockerd: dockerd needs root here (no rootless setup); run as root" >&2
  exit 1
fi

mkdir -p "$dir/data" "$dir/exec"
# Parallel callers (test workers) queue here; the first starts the daemon, the rest find it answering.
exec 9>"$dir/start.lock"
flock -w "$wait_s" 9 || { echo "start-dockerd: could not get $dir/start.lock" >&2; exit 1; }
if answers; then
  echo "start-dockerd: daemon already answering on $host" >&2
  echo "export DOCKER_HOST=$host"
  exit 0
fi
# A stale pidfile or socket from a killed daemon would make dockerd refuse to start.
if [ -f "$dir/docker.pid" ]; then
  oldpid="$(cat "$dir/docker.pid" 2>/dev/null || true)"
  if [ -n "$oldpid" ] && kill -0 "$oldpid" 2>/dev/null; then
    echo "start-dockerd: dockerd (pid $oldpid) is running but not answering yet; waiting for it" >&2
  else
    rm -f "$dir/docker.pid" "$sock"
  fi
fi

# Debian 13's dockerd, unpacked under the cache folder: its binaries first on PATH.
containerd_store_dockerd() {
  local root="${XDG_CACHE_HOME:-$HOME/.cache}/astro-deploy-sdk/dockerd-trixie"
  if [ ! -x "$root/usr/sbin/dockerd" ]; then
    local apt_dir
    apt_dir="$(mktemp -d)"
    mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/deb"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$apt_dir/sources/trixie.sources"
    local apt=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/sources" -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    "${apt[@]}" update >&2
    (cd "$apt_dir/deb" && "${apt[@]}" download docker.io >&2)
    mkdir -p "$root.partial"
    dpkg-deb -x "$apt_dir"/deb/docker.io_*.deb "$root.partial"
    rm -rf "$root" "$apt_dir"
    mv "$root.partial" "$root"
  fi
  echo "$root"
}

if [ ! -f "$dir/docker.pid" ]; then
  daemon_path="$PATH"
  store_flags=(--storage-driver vfs)
  if [ "$store" = containerd ]; then
    root="$(containerd_store_dockerd)"
    daemon_path="$root/usr/sbin:$root/usr/bin:$PATH"
    printf '{ "features": { "containerd-snapshotter": true } }\n' >"$dir/daemon.json"
    store_flags=(--config-file "$dir/daemon.json" --storage-driver native)
  fi
  # setsid + nohup: the daemon must outlive the shell (and test worker) that started it.
  PATH="$daemon_path" setsid nohup dockerd \
    --host "$host" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" \
    "${store_flags[@]}" \
    --iptables=false \
    --ip6tables=false \
    --bridge=none \
    --insecure-registry 127.0.0.0/8 \
    --max-concurrent-uploads 5 \
    >"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
fi

deadline=$(( $(date +%s) + wait_s ))
until answers; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "start-dockerd: dockerd did not answer on $host within ${wait_s}s; last log lines:" >&2
    tail -n 20 "$dir/dockerd.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done

echo "start-dockerd: dockerd answering on $host (log: $dir/dockerd.log)" >&2
echo "export DOCKER_HOST=$host"
