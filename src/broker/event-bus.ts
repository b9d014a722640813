import type { BrokerEvent, EventType } from '../protocol/events.js';
import type { Clock } from './ports.js';

export type EventListener = (event: BrokerEvent) => void;

/**
 * In-process fan-out of domain events to the WebSocket route, the log and tests. Listeners must
 * not throw; one that does is dropped rather than break the emitter. Payloads never carry a secret.
 */
export class EventBus {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly clock: Clock) {}

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(type: EventType, payload: Record<string, unknown> = {}): BrokerEvent {
    const event: BrokerEvent = { ...payload, type, at: new Date(this.clock.now()).toISOString() };
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        this.listeners.delete(listener);
      }
    }
    return event;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
