import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ProcessCommand {
  argv: string[];
  /** Files removed after each run (outside the timed part). */
  remove?: string[];
}

export interface ProcessTiming {
  /** Wall seconds, one per round. */
  wall: number[];
  /** CPU seconds (user + system) of the process itself, one per round. */
  cpu: number[];
}

/**
 * Runs each command once per round, the order rotating every round so no command always runs
 * first (the machine is shared: alternating rounds in one run is the only fair comparison). A
 * child's own CPU comes from wait4's rusage, which Node has no call for, hence python.
 */
const RUNNER = `
import json, os, subprocess, sys, time
cmds = json.loads(sys.argv[1]); rounds = int(sys.argv[2])
out = [{"wall": [], "cpu": []} for _ in cmds]
for r in range(rounds):
    for k in range(len(cmds)):
        i = (k + r) % len(cmds)
        c = cmds[i]
        t = time.perf_counter()
        p = subprocess.Popen(c["argv"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.stderr.write("%s exited %d: %s\\n" % (" ".join(c["argv"]), code, err.decode()[-500:]))
            sys.exit(1)
        out[i]["wall"].append(wall); out[i]["cpu"].append(ru.ru_utime + ru.ru_stime)
        for f in c.get("remove", []):
            try: os.remove(f)
            except FileNotFoundError: pass
print(json.dumps(out))
`;

export async function timeProcesses(commands: readonly ProcessCommand[], rounds: number, env: NodeJS.ProcessEnv = process.env): Promise<ProcessTiming[]> {
  const { stdout } = await run('python3', ['-c', RUNNER, JSON.stringify(commands), String(rounds)], { env, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as ProcessTiming[];
}
