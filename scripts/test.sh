#!/usr/bin/env bash
# The test command: typecheck, lint, then every test under a real (unlocked) Secret Service.
# The last line is the totals alone, "N passed, N failed", derived from vitest's JSON report.
set -uo pipefail
cd "$(dirname "$0")/.."
results=.vitest-results.json
rm -f "$results"

if ! npx tsc -p tsconfig.json --noEmit; then
  echo "typecheck failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
if ! npx eslint --max-warnings 0 .; then
  echo "lint failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

bash scripts/with-keyring.sh npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node scripts/test-summary.mjs "$results" || status=1
exit "$status"
