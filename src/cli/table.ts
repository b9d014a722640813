/**
 * How output is laid out (DESIGN section 7): on a terminal, columns fit `width` and long values are
 * cut with "…"; piped, tables are tab-separated lines with every value whole.
 */
export interface Layout {
  tty: boolean;
  width: number;
}

/** No width limit: what format functions produce when the caller does not say. */
const UNLIMITED: Layout = { tty: true, width: Number.POSITIVE_INFINITY };

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], layout: Layout = UNLIMITED): string[] {
  if (!layout.tty) return [header, ...rows].map((cells) => cells.map((cell) => cell.replace(/[\t\n]/g, ' ')).join('\t'));
  const widths = fitWidths(
    header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length))),
    layout.width,
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => {
        const cut = truncate(cell, widths[column] ?? 0);
        return column === cells.length - 1 ? cut : cut.padEnd(widths[column] ?? 0);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Narrows the widest columns one character at a time until the row fits (columns keep at least 6). */
function fitWidths(natural: readonly number[], width: number): number[] {
  const widths = [...natural];
  const total = (): number => widths.reduce((sum, w) => sum + w, 0) + 2 * Math.max(0, widths.length - 1);
  while (total() > width) {
    const widest = widths.indexOf(Math.max(...widths));
    if ((widths[widest] ?? 0) <= 6) break;
    widths[widest] = (widths[widest] ?? 0) - 1;
  }
  return widths;
}

/** `text` cut to `width` characters, the last one an ellipsis when something was cut. */
export function truncate(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** An ISO time as "YYYY-MM-DD HH:MMZ" (UTC), or a placeholder. */
export function formatWhen(iso: string | null | undefined, none = 'never'): string {
  if (iso === null || iso === undefined) return none;
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`;
}

/** "1 day", "2 days", "0 apps": a count with its noun in the right number. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}
