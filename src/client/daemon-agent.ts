import { Agent, type ClientRequest, type ClientRequestArgs } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DaemonUnavailableError } from './client-errors.js';

/** Connecting to a local socket is immediate when a daemon listens; this bounds a stuck one. */
export const CONNECT_TIMEOUT_MS = 3_000;

/** An idle kept-alive connection is closed before the daemon's own 5 s keep-alive timeout can race a new request. */
const IDLE_CONNECTION_MS = 4_000;

export interface DaemonAgentOptions {
  socketPath: string;
  /** Runs on every new connection before HTTP may use it (the hello handshake on the owner's socket). */
  verify?: (socket: Socket) => Promise<void>;
  /** false: one connection per request (the event stream). */
  keepAlive?: boolean;
  connectTimeoutMs?: number;
}

/**
 * node:http's agent for the daemon's Unix socket or named pipe: keeps connections alive between
 * calls (a streaming fetch holds one; other calls open their own), bounds connecting, and lets
 * no request onto a connection that has not passed `verify`.
 */
export class DaemonAgent extends Agent {
  private readonly target: DaemonAgentOptions;

  constructor(options: DaemonAgentOptions) {
    super({ keepAlive: options.keepAlive ?? true, scheduling: 'lifo' });
    this.target = options;
  }

  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const { socketPath, verify } = this.target;
    const socket = connect(socketPath);
    let settled = false;
    const settle = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      if (err !== null) socket.destroy();
      callback?.(err, socket);
    };
    const onError = (err: Error): void => settle(err);
    const timeoutMs = this.target.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const timer = setTimeout(() => settle(new DaemonUnavailableError(socketPath, { reason: `connecting took longer than ${timeoutMs / 1000} s` })), timeoutMs);
    socket.on('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      if (verify === undefined) {
        settle(null);
        return;
      }
      verify(socket).then(
        () => settle(null),
        (err: unknown) => settle(err instanceof Error ? err : new Error(String(err))),
      );
    });
    return undefined;
  }

  override keepSocketAlive(socket: Duplex): boolean {
    const keep = (Agent.prototype.keepSocketAlive as (this: Agent, socket: Duplex) => boolean | undefined).call(this, socket) !== false;
    if (keep) (socket as Socket).setTimeout(IDLE_CONNECTION_MS);
    return keep;
  }

  override reuseSocket(socket: Duplex, request: ClientRequest): void {
    super.reuseSocket(socket, request);
    (socket as Socket).setTimeout(0);
  }
}
