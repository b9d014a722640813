import { appendFileSync } from 'node:fs';

/**
 * Records a measured figure for docs/reliability.md. A no-op unless the report script set
 * TOKENBROKER_FIGURES (a JSON-lines file), so ordinary test runs write nothing.
 */
export function recordFigure(name: string, value: number | string, unit = ''): void {
  const file = process.env.TOKENBROKER_FIGURES;
  if (!file) return;
  appendFileSync(file, `${JSON.stringify({ name, value, unit })}\n`);
}
