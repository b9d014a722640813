#!/usr/bin/env bash
# Runs a command inside a throwaway D-Bus session that has a real, unlocked Secret Service
# (gnome-keyring), so keychain tests exercise libsecret for real instead of a fake.
#
#   bash scripts/with-keyring.sh npx vitest run tests/e2e/secret-store.test.ts
#
# Works headless and as root (CI runs with </dev/null and no display). It never touches the
# caller's real keyring: the bus is private (even when DBUS_SESSION_BUS_ADDRESS is already set,
# because a desktop session's bus already has a keyring that we must not replace or fill with
# test entries) and the keyring files live in a temp dir that is removed afterwards.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

# Set by the outer invocation for the inner one; its value is the temp dir for keyring files.
MARKER=TOKENBROKER_KEYRING_DIR

if [[ -z "${!MARKER:-}" ]]; then
  for tool in dbus-run-session dbus-send gnome-keyring-daemon; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "with-keyring: '$tool' not found; install dbus, dbus-x11 and gnome-keyring" >&2
      exit 127
    fi
  done
  keyring_dir="$(mktemp -d "${TMPDIR:-/tmp}/tokenbroker-keyring.XXXXXX")"
  # Not exec: we stay around to remove the keyring files once the command is done. The keyring
  # daemon exits by itself when the private bus goes away with dbus-run-session.
  trap 'rm -rf -- "$keyring_dir"' EXIT
  status=0
  env "$MARKER=$keyring_dir" dbus-run-session -- bash "${BASH_SOURCE[0]}" "$@" || status=$?
  exit "$status"
fi

keyring_dir="${!MARKER}"
unset "$MARKER"
mkdir -p -m 0700 "$keyring_dir/data" "$keyring_dir/runtime"

bus_call() {
  dbus-send --session --print-reply=literal --reply-timeout=2000 "$@" 2>/dev/null
}

# The password must be non-empty: with an empty one gnome-keyring does not create the "login"
# collection and the first write asks a (headless: impossible) prompter to create it instead.
# XDG_DATA_HOME / XDG_RUNTIME_DIR are set for the daemon only (keyring files and control socket),
# so the command itself keeps the caller's environment.
daemon_env="$(
  printf '%s' 'tokenbroker-test-keyring' |
    XDG_DATA_HOME="$keyring_dir/data" XDG_RUNTIME_DIR="$keyring_dir/runtime" \
      gnome-keyring-daemon --unlock --components=secrets
)"

# It prints KEY=VALUE lines (e.g. GNOME_KEYRING_CONTROL; none with only the secrets component).
while IFS= read -r line; do
  if [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
    export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
  fi
done <<<"$daemon_env"

# The daemon forks before it has claimed org.freedesktop.secrets on the bus. A client that calls
# in that window would D-Bus-activate a second, locked daemon, so wait until ours owns the name
# and the default collection resolves to the unlocked "login" collection.
ready=""
for _ in $(seq 1 200); do
  if [[ "$(bus_call --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets)" == *true* ]] &&
    [[ "$(bus_call --dest=org.freedesktop.secrets /org/freedesktop/secrets \
      org.freedesktop.Secret.Service.ReadAlias string:default)" == */collection/login* ]]; then
    ready=1
    break
  fi
  sleep 0.05
done
if [[ -z "$ready" ]]; then
  echo "with-keyring: gnome-keyring did not provide an unlocked default collection within 10 s" >&2
  exit 1
fi

exec "$@"
