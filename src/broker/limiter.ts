/**
 * At most `limit()` tasks at once; the rest wait in arrival order. The limit is read on every
 * start, so a config reload takes effect without rebuilding anything.
 */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: () => number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= Math.max(1, this.limit())) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running += 1;
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `running` stays the same.
      if (next !== undefined) next();
      else this.running -= 1;
    }
  }

  get active(): number {
    return this.running;
  }
}
