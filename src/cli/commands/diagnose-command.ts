import type { Command } from 'commander';
import { currentPathInputs, resolvePaths } from '../../protocol/paths.js';
import type { CliContext } from '../context.js';
import type { Check, DiagnoseReport } from '../diagnose/check.js';
import { runDiagnoseChecks } from '../diagnose/run-diagnose.js';
import { SilentExit } from '../errors.js';
import { writeJson, writeLines } from '../io.js';
import { plural } from '../table.js';

export interface DiagnoseOptions {
  json: boolean;
}

export function registerDiagnoseCommand(program: Command, ctx: CliContext): void {
  program
    .command('diagnose')
    .description('check the socket, the daemon, the keychain, the token and the way to each server; exit 1 if anything fails')
    .option('--json', 'machine-readable output', false)
    .action(async (options: DiagnoseOptions) => runDiagnose(options, ctx));
}

export async function runDiagnose(options: DiagnoseOptions, ctx: CliContext): Promise<void> {
  const paths = resolvePaths({ ...currentPathInputs(ctx.globals().socket), env: ctx.io.env });
  const report = await runDiagnoseChecks({
    socketPath: paths.socketPath,
    configFile: paths.configFile,
    env: ctx.io.env,
    uid: typeof process.getuid === 'function' ? process.getuid() : undefined,
  });
  if (options.json) writeJson(ctx.io.stdout, report);
  else writeLines(ctx.io, formatDiagnose(report));
  if (!report.ok) throw new SilentExit(1);
}

const LABELS = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

export function formatDiagnose(report: DiagnoseReport): string[] {
  const lines = [`tokenbroker diagnose (CLI ${report.version})`, ''];
  const general = report.checks.filter((c) => c.server === undefined);
  lines.push(...general.flatMap(formatCheck));
  const servers = [...new Set(report.checks.map((c) => c.server).filter((s): s is string => s !== undefined))];
  for (const server of servers) {
    lines.push('', `server ${server}`);
    lines.push(...report.checks.filter((c) => c.server === server).flatMap(formatCheck));
  }
  const { ok, warn, fail } = report.summary;
  lines.push('', `${ok} ok, ${plural(warn, 'warning')}, ${plural(fail, 'failure')}`);
  return lines;
}

function formatCheck(c: Check): string[] {
  const lines = [`  ${LABELS[c.status]}  ${c.id.padEnd(13)} ${c.message}`];
  if (c.hint !== undefined && c.status !== 'ok') lines.push(`${' '.repeat(22)}hint: ${c.hint}`);
  return lines;
}
