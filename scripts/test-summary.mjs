// Prints vitest's totals as the single line CI reads: "N passed, N failed, N skipped".
// A run that executed no test, or left no report, fails.
// `--sum LINE...` adds up such lines (one per run, e.g. Node 20 and Node 24) into one.
import { readFileSync } from 'node:fs';

if (process.argv[2] === '--sum') {
  const totals = { passed: 0, failed: 0, skipped: 0 };
  for (const line of process.argv.slice(3)) {
    const counts = parseTotals(line);
    // A run that did not reach its totals line (crash, setup failure) counts as one failure.
    if (counts === undefined) totals.failed += 1;
    else for (const key of Object.keys(totals)) totals[key] += counts[key];
  }
  report(totals);
} else {
  const file = process.argv[2] ?? '.vitest-results.json';
  let vitest;
  try {
    vitest = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    report({ passed: 0, failed: 1, skipped: 0 });
  }
  report({
    passed: vitest.numPassedTests ?? 0,
    failed: (vitest.numFailedTests ?? 0) + filesFailedWithoutTests(vitest),
    skipped: (vitest.numPendingTests ?? 0) + (vitest.numTodoTests ?? 0),
  });
}

function report({ passed, failed, skipped }) {
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

/** "12 passed, 0 failed[, 3 skipped]" -> counts; anything else -> undefined. */
function parseTotals(line) {
  const match = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/.exec(line.trim());
  if (match === null) return undefined;
  return { passed: Number(match[1]), failed: Number(match[2]), skipped: Number(match[3] ?? 0) };
}

/** A test file that failed to load (or crashed) has no failed tests; count it as one failure so it shows. */
function filesFailedWithoutTests(r) {
  return (r.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
}
