/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
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
