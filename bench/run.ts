/**
 * `npm run bench`: figures against targets (and against the direct path where there is one), in
 * one run on this machine. Timing targets live here, never in tests.
 */
import os from 'node:os';
import { printRows } from './harness.js';
import { benchSources } from './sources-bench.js';
import { benchStatus } from './status-bench.js';
import { benchFetch } from './fetch-bench.js';
import { benchClientTokens } from './client-token-bench.js';

console.log(`# tokenbroker bench — node ${process.version}, ${os.cpus().length} cpu, ${os.cpus()[0]?.model ?? 'unknown cpu'}`);
printRows('daemon basics', await benchStatus());
printRows('app sources', await benchSources());
printRows('client tokens on an extra listener', await benchClientTokens());
printRows('fetch', await benchFetch());
