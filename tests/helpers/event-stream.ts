import type { TokenBrokerClient } from '../../src/client/client.js';
import type { BrokerEvent } from '../../src/protocol/events.js';

export interface EventRecording {
  /** Every event received so far, in order. */
  events: BrokerEvent[];
  /** Resolves once the daemon has subscribed this stream (WebSocket open): no later event is missed. */
  opened: Promise<void>;
  /** Resolves when the stream ends (daemon closed it, or `signal` aborted). */
  done: Promise<void>;
}

/** Records the daemon's events; await `opened` instead of sleeping before the action under test. */
export function recordEvents(client: Pick<TokenBrokerClient, 'events'>, signal?: AbortSignal): EventRecording {
  const events: BrokerEvent[] = [];
  let open!: () => void;
  const openSignal = new Promise<void>((resolve) => (open = resolve));
  const done = (async () => {
    for await (const event of client.events({ onOpen: open, ...(signal === undefined ? {} : { signal }) })) events.push(event);
  })();
  const opened = Promise.race([openSignal, done.then(() => Promise.reject(new Error('the event stream ended before it opened')))]);
  // Callers that only await `done` must not see an unhandled rejection from `opened`.
  opened.catch(() => undefined);
  return { events, opened, done };
}
