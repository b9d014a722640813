export { cliEntry, packageRoot } from '../node/package-root.js';
