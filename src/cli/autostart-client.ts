import { TokenBrokerClient, type TokenBrokerClientOptions } from '../client/client.js';
import { ensureDaemon, isStartable, type AutostartOptions } from './autostart.js';

/** TokenBrokerClient.send's parameters (protected, so spelled out here). */
type SendArgs = [
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options: { query?: Record<string, string | undefined>; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal },
];

/**
 * The CLI's client: when the first request finds no daemon (no socket, or nobody listening), it
 * starts one (or explains how to) and sends the request again, once. The request never reached a
 * daemon, so repeating it is safe; the command itself (e.g. a token read from stdin) is not rerun.
 */
export class AutostartClient extends TokenBrokerClient {
  private tried = false;

  constructor(
    options: TokenBrokerClientOptions,
    private readonly autostart: Omit<AutostartOptions, 'socketPath'>,
  ) {
    super(options);
  }

  protected override async send(...args: SendArgs) {
    try {
      return await super.send(...args);
    } catch (err) {
      if (this.tried || !isStartable(err)) throw err;
      this.tried = true;
      await ensureDaemon(err, { ...this.autostart, socketPath: this.socketPath });
      return super.send(...args);
    }
  }
}
