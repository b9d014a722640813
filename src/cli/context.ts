import { TokenBrokerClient } from '../client/client.js';
import type { IO } from './io.js';

export interface GlobalOptions {
  socket?: string;
  debug?: boolean;
}

/** What every command's run function gets: IO and a way to reach the daemon. */
export interface CliContext {
  io: IO;
  /** Global options, read when the command runs (commander parses them first). */
  globals(): GlobalOptions;
  /** A client for the socket chosen by --socket / TOKENBROKER_SOCKET / defaults. */
  client(): TokenBrokerClient;
  /** Closes the client's connection, if one was opened. */
  closeClient(): Promise<void>;
}

export function createContext(io: IO, globals: () => GlobalOptions, makeClient?: (socket: string | undefined) => TokenBrokerClient): CliContext {
  let client: TokenBrokerClient | undefined;
  return {
    io,
    globals,
    client() {
      const socket = globals().socket;
      // On an extra listener (a shared socket) the CLI needs a client token: from the environment, never argv.
      const clientToken = io.env.TOKENBROKER_CLIENT_TOKEN;
      client ??= makeClient
        ? makeClient(socket)
        : new TokenBrokerClient({ ...(socket === undefined ? {} : { socketPath: socket }), ...(clientToken === undefined || clientToken === '' ? {} : { clientToken }) });
      return client;
    },
    async closeClient() {
      await client?.close();
    },
  };
}
