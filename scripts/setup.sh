#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine with Node >= 20.18: the system packages that
# keytar (OS keychain) and the test suite need, then the npm dependencies (which builds dist/).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# libsecret-1-dev: keytar's native build; gnome-keyring + dbus(-x11): a real Secret Service for
# the keychain tests; systemd: systemd-analyze and systemd-socket-activate for the service tests;
# python3: plist validation in tests.
packages=(libsecret-1-dev gnome-keyring dbus dbus-x11 libsecret-tools systemd python3 build-essential)
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
