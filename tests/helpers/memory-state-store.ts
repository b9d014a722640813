import type { StateStore } from '../../src/broker/ports.js';

/** StateStore for domain tests: JSON round-trips like the fs store, so shared references can't hide bugs. */
export class MemoryStateStore implements StateStore {
  readonly documents = new Map<string, string>();
  failWrites = false;

  async read(name: string): Promise<unknown> {
    const text = this.documents.get(name);
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  }

  async write(name: string, value: unknown): Promise<void> {
    if (this.failWrites) throw new Error(`simulated write failure for ${name}`);
    this.documents.set(name, JSON.stringify(value));
  }

  async remove(name: string): Promise<void> {
    this.documents.delete(name);
  }
}
