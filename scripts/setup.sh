#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine with Node >= 20.18: the system packages the
# test suite needs, then the npm dependencies (which builds dist/). Nothing is compiled: the
# keychain binding (@napi-rs/keyring) ships prebuilt, so no compiler or -dev package is needed.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# gnome-keyring + dbus(-x11): a real Secret Service for the keychain tests (scripts/with-keyring.sh);
# libsecret-tools: secret-tool, which the tests use to read entries as another program would;
# systemd: systemd-analyze and systemd-socket-activate for the service tests; python3: plist
# validation in tests.
packages=(gnome-keyring dbus dbus-x11 libsecret-tools systemd python3)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# electron (a dev dependency: examples/electron-main.ts is typechecked against its types) must not
# download its binary here (no network to its CDN, and nothing runs it).
export ELECTRON_SKIP_BINARY_DOWNLOAD=1
npm ci --no-audit --no-fund
