export { isProcessAlive, waitForExit } from '../node/process-alive.js';
