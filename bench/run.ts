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
import { benchDownloads } from './download-bench.js';
import { benchCliStart, benchFetchToFile } from './footprint-bench.js';

console.log(`# tokenbroker bench — node ${process.version}, ${os.cpus().length} cpu, ${os.cpus()[0]?.model ?? 'unknown cpu'}`);
// `npm run bench -- downloads` runs one section (the machine may be shared).
const only = process.argv.slice(2);
const wanted = (name: string): boolean => only.length === 0 || only.includes(name);
if (wanted('basics')) printRows('daemon basics', await benchStatus());
if (wanted('sources')) printRows('app sources', await benchSources());
if (wanted('client-tokens')) printRows('client tokens on an extra listener', await benchClientTokens());
if (wanted('fetch')) printRows('fetch', await benchFetch());
if (wanted('cli')) printRows('CLI start-up', await benchCliStart());
if (wanted('fetch-o')) printRows('fetch -o against a minimal Node program and curl', await benchFetchToFile());
if (wanted('downloads')) printRows('downloads to a file', await benchDownloads());
