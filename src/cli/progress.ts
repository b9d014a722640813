import type { Writable } from 'node:stream';

/** Redraws at most this often: a terminal is slower than a fast download. */
const REDRAW_MS = 100;

/**
 * A one-line progress bar for stderr (only ever shown on a TTY): bytes, rate and ETA. The rate
 * counts only this run's bytes, so a resumed download does not claim an absurd speed.
 */
export class ProgressBar {
  private readonly startedAt: number;
  private lastDraw = -Infinity;
  private lastLine = '';

  constructor(
    private readonly stream: Writable,
    private readonly now: () => number = () => performance.now(),
    private readonly width = 24,
  ) {
    this.startedAt = now();
  }

  update(received: number, total: number | undefined, resumedFrom = 0): void {
    const t = this.now();
    if (t - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = t;
    this.draw(formatProgress({ received, total, resumedFrom, elapsedMs: t - this.startedAt, width: this.width }));
  }

  /** Draws the final state and ends the line. */
  done(received: number, total: number | undefined, resumedFrom = 0): void {
    this.draw(formatProgress({ received, total, resumedFrom, elapsedMs: this.now() - this.startedAt, width: this.width }));
    this.stream.write('\n');
  }

  /** Ends the line after a failure, leaving the last state visible. */
  abandon(): void {
    if (this.lastLine !== '') this.stream.write('\n');
  }

  private draw(line: string): void {
    // Pad over a longer previous line instead of relying on terminal escape codes.
    const padded = line.padEnd(this.lastLine.length);
    this.lastLine = line;
    this.stream.write(`\r${padded}`);
  }
}

export function formatProgress(p: { received: number; total: number | undefined; resumedFrom: number; elapsedMs: number; width: number }): string {
  const rate = p.elapsedMs > 0 ? ((p.received - p.resumedFrom) * 1000) / p.elapsedMs : 0;
  if (p.total === undefined || p.total <= 0) return `${formatBytes(p.received)}  ${formatBytes(rate)}/s`;
  const fraction = Math.min(1, p.received / p.total);
  const filled = Math.round(fraction * p.width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(p.width - filled)}]`;
  const eta = rate > 0 ? formatEta((p.total - p.received) / rate) : '--:--';
  return `${bar} ${(fraction * 100).toFixed(0).padStart(3)}%  ${formatBytes(p.received)} / ${formatBytes(p.total)}  ${formatBytes(rate)}/s  ETA ${eta}`;
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
