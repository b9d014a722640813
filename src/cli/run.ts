/** Process entry: run the CLI with the real terminal and exit with its code. */
import { main } from './main.js';

const code = await main(process.argv.slice(2));
// Let stdout drain before exiting (a pipe can be slower than us).
process.exitCode = code;
if (process.stdout.writableNeedDrain) process.stdout.once('drain', () => process.exit(code));
else process.exit(code);
