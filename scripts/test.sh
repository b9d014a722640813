#!/usr/bin/env bash
# The test command: typecheck (the Electron example too), lint, then every test under a real (unlocked) Secret Service.
# The last line is the totals alone, "N passed, N failed, N skipped", derived from vitest's JSON
# report. TOKENBROKER_TEST_SKIP_STATIC=1 skips typecheck and lint (.ci/run's second Node version).
set -uo pipefail
cd "$(dirname "$0")/.."
results=.vitest-results.json
# vitest colours its report whenever CI is set; logs read by people and tools want plain text.
if [ -n "${CI:-}" ] || [ ! -t 1 ]; then export NO_COLOR=1; fi
rm -f "$results"

if [ "${TOKENBROKER_TEST_SKIP_STATIC:-}" = 1 ]; then
  :
elif ! npx tsc -p tsconfig.json --noEmit; then
  echo "typecheck failed" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
elif ! npx tsc -p examples/tsconfig.json; then
  # examples/electron-main.ts against Electron 32's own type definitions (the launcher's major).
  echo "typecheck of examples/electron-main.ts against Electron's types failed" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
elif ! npx eslint --max-warnings 0 .; then
  echo "lint failed" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

bash scripts/with-keyring.sh npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node scripts/test-summary.mjs "$results" || status=1
exit "$status"
