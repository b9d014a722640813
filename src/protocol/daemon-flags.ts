/**
 * Node options the daemon runs with wherever we start it (service units, autostart, the bin
 * shebang). V8 sizes the heap at start-up, so these cannot be set from inside the process.
 * - `--max-semi-space-size=1`: a 1 MB semi-space keeps the young generation small: the daemon's
 *   RSS after a burst of requests drops by ~25 MB (measured by `npm run bench`), and its
 *   allocations are short-lived.
 * - `--initial-old-space-size=64`: with the default (small) first old-generation limit, V8 ran a
 *   mark-compact every ~10 MB of a download or relay (~100 per GiB, each freeing almost nothing),
 *   on Node 20 and 24 alike; with a 64 MB first limit there were none, the daemon's CPU per GiB
 *   written fell by ~1.4 s and idle RSS stayed the same (docs/performance.md).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--initial-old-space-size=64'];
