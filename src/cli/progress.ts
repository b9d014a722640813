import type { Writable } from 'node:stream';

/** Redraws at most this often: a terminal is slower than a fast download. */
const REDRAW_MS = 100;

/** Erases from the cursor to the end of the line (after a `\r`, the rest of the previous redraw). */
const CLEAR_TO_END = '\x1b[K';

/**
 * A one-line progress bar for stderr (only ever shown on a TTY): bytes, rate and ETA. The rate
 * counts only this run's bytes, so a resumed download does not claim an absurd speed. The line
 * fits the terminal's width (it drops the bar, then the ETA, the rate and the total as the
 * terminal narrows): a line that wrapped could not be redrawn in place with `\r`.
 */
export class ProgressBar {
  private readonly startedAt: number;
  private lastDraw = -Infinity;
  private lastLine = '';

  constructor(
    private readonly stream: Writable,
    private readonly now: () => number = () => performance.now(),
    private readonly width = 24,
    /** The terminal's width, read at each redraw (it can change); default: the stream's own. */
    private readonly columns: () => number | undefined = () => (stream as { columns?: number }).columns,
  ) {
    this.startedAt = now();
  }

  update(received: number, total: number | undefined, resumedFrom = 0): void {
    const t = this.now();
    if (t - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = t;
    this.draw(formatProgress({ received, total, resumedFrom, elapsedMs: t - this.startedAt, width: this.width, columns: this.columns() }));
  }

  /** Draws the final state and ends the line. */
  done(received: number, total: number | undefined, resumedFrom = 0): void {
    this.draw(formatProgress({ received, total, resumedFrom, elapsedMs: this.now() - this.startedAt, width: this.width, columns: this.columns() }));
    this.stream.write('\n');
  }

  /** Ends the line after a failure, leaving the last state visible. */
  abandon(): void {
    if (this.lastLine !== '') this.stream.write('\n');
  }

  private draw(line: string): void {
    this.lastLine = line;
    this.stream.write(`\r${line}${CLEAR_TO_END}`);
  }
}

/**
 * One progress line. With `columns` (the terminal's width) the line stays shorter than it, so it
 * never wraps: fields are dropped in this order — bar, ETA, rate, total — and what is left is cut.
 */
export function formatProgress(p: { received: number; total: number | undefined; resumedFrom: number; elapsedMs: number; width: number; columns?: number | undefined }): string {
  const rate = p.elapsedMs > 0 ? ((p.received - p.resumedFrom) * 1000) / p.elapsedMs : 0;
  const room = p.columns === undefined || p.columns <= 0 ? Infinity : p.columns - 1;
  const fit = (candidates: string[]): string => {
    const found = candidates.find((line) => line.length <= room) ?? candidates[candidates.length - 1] ?? '';
    return found.length <= room ? found : found.slice(0, Math.max(0, room));
  };
  if (p.total === undefined || p.total <= 0) return fit([`${formatBytes(p.received)}  ${formatBytes(rate)}/s`, formatBytes(p.received)]);
  const fraction = Math.min(1, p.received / p.total);
  const filled = Math.round(fraction * p.width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(p.width - filled)}]`;
  const eta = rate > 0 ? formatEta((p.total - p.received) / rate) : '--:--';
  const percent = `${(fraction * 100).toFixed(0).padStart(3)}%`;
  const bytes = `${formatBytes(p.received)} / ${formatBytes(p.total)}`;
  const speed = `${formatBytes(rate)}/s`;
  return fit([
    `${bar} ${percent}  ${bytes}  ${speed}  ETA ${eta}`,
    `${percent}  ${bytes}  ${speed}  ETA ${eta}`,
    `${percent}  ${bytes}  ${speed}`,
    `${percent}  ${bytes}`,
    `${percent}  ${formatBytes(p.received)}`,
    percent.trim(),
  ]);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.ceil(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}
