import { TokenBrokerClient } from '../client/client.js';
import { autostartDisabled } from '../client/autostart.js';
import { writeLine, type IO } from './io.js';

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

/**
 * `autostart`: the default client starts a daemon when none answers (DESIGN section 7, see
 * src/client/autostart.ts) unless TOKENBROKER_NO_AUTOSTART=1. The real CLI process turns it on;
 * an embedded main() (tests) opts in.
 */
export function createContext(io: IO, globals: () => GlobalOptions, makeClient?: (socket: string | undefined) => TokenBrokerClient, autostart = false): CliContext {
  let client: TokenBrokerClient | undefined;
  return {
    io,
    globals,
    client() {
      const socket = globals().socket;
      // On an extra listener (a shared socket) the CLI sends a client token, from the environment
      // (never argv). That socket is somebody's running daemon: never autostart one there.
      const clientToken = io.env.TOKENBROKER_CLIENT_TOKEN;
      if (makeClient) client ??= makeClient(socket);
      else if (clientToken !== undefined && clientToken !== '') client ??= new TokenBrokerClient({ ...(socket === undefined ? {} : { socketPath: socket }), clientToken });
      else client ??= autostart ? autostartClient(io, socket) : new TokenBrokerClient(socket === undefined ? {} : { socketPath: socket });
      return client;
    },
    async closeClient() {
      await client?.close();
    },
  };
}

function autostartClient(io: IO, socket: string | undefined): TokenBrokerClient {
  const socketOption = socket === undefined ? {} : { socketPath: socket };
  if (autostartDisabled(io.env)) return new TokenBrokerClient(socketOption);
  return new TokenBrokerClient({
    ...socketOption,
    autostart: {
      env: io.env,
      onStarted: (started) => {
        if (!io.stderrIsTTY) return;
        if (started.how === 'service') writeLine(io.stderr, `tokenbroker: started the login service (${started.command ?? ''})`);
        else writeLine(io.stderr, `tokenbroker: started the daemon in the background (pid ${started.pid ?? '?'}, log ${started.logFile ?? '?'})`);
      },
    },
  });
}
