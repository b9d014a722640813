import { TokenBrokerClient } from '../../client/client.js';
import { ConfigError, loadConfig } from '../../node/config-file.js';
import type { Config } from '../../protocol/config-schema.js';
import { VERSION } from '../../protocol/version.js';
import { check, forServer, summarise, type Check, type DiagnoseReport } from './check.js';
import { daemonChecks, tokenCheck } from './daemon-checks.js';
import { socketChecks } from './local-checks.js';
import { serverChecks } from './network-checks.js';

export interface DiagnoseInputs {
  socketPath: string;
  /** The config file the CLI would use; the daemon's own (from status) wins when it answers. */
  configFile: string;
  env: NodeJS.ProcessEnv;
  uid: number | undefined;
  /** Defaults to a plain client (diagnose never starts a daemon). */
  client?: TokenBrokerClient;
}

/**
 * Runs every check. Works with the daemon down: that check fails and the server checks run on
 * the config file anyway. Never throws for a failed check; only the report says what failed.
 */
export async function runDiagnoseChecks(inputs: DiagnoseInputs): Promise<DiagnoseReport> {
  const client = inputs.client ?? new TokenBrokerClient({ socketPath: inputs.socketPath, timeoutMs: 5_000, onVersionMismatch: () => undefined });
  const checks: Check[] = [...(await socketChecks(inputs.socketPath, inputs.uid))];
  const daemon = await daemonChecks(client).finally(() => (inputs.client === undefined ? client.close() : undefined));
  checks.push(...daemon.checks);

  const configFile = daemon.status?.config.path ?? inputs.configFile;
  let config: Readonly<Config> | undefined;
  try {
    config = await loadConfig(configFile);
    checks.push(check('config', 'ok', `${configFile}: ${config.servers.length} server${config.servers.length === 1 ? '' : 's'} (${config.servers.map((s) => s.name).join(', ')})`));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    checks.push(check('config', 'fail', err.message, err.hint ?? 'Fix the file (the daemon refuses to start with it), or remove it to use the defaults.'));
  }

  if (config !== undefined) {
    const perServer = await Promise.all(
      config.servers.map(async (server) => {
        const token = tokenCheck(daemon.tokens.get(server.name));
        const network = await serverChecks({ server, config, env: inputs.env });
        return [...(token === undefined ? [] : [forServer(token, server.name)]), ...network];
      }),
    );
    checks.push(...perServer.flat());
  }
  const summary = summarise(checks);
  return { ok: summary.fail === 0, version: VERSION, socket: inputs.socketPath, config: configFile, checks, summary };
}
