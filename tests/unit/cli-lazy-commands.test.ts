import { describe, expect, it } from 'vitest';
import { commandsFor, main } from '../../src/cli/main.js';
import { VERSION } from '../../src/protocol/version.js';
import { bufferIO } from '../helpers/buffer-io.js';

const ALL = ['daemon', 'status', 'token', 'fetch', 'sources', 'apps', 'service', 'diagnose', 'client-token'];

describe('CLI loads only the command it runs', () => {
  it('picks the first operand after the global options', () => {
    expect(commandsFor(['status'])).toEqual(['status']);
    expect(commandsFor(['--socket', 'status', 'fetch', 'https://x/y'])).toEqual(['fetch']);
    expect(commandsFor(['--socket=/tmp/s', '--debug', 'token', 'set', '--help'])).toEqual(['token']);
    expect(commandsFor(['client-token', 'list'])).toEqual(['client-token']);
  });

  it('registers every command for help, unknown commands and no command', () => {
    expect(commandsFor([])).toEqual(ALL);
    expect(commandsFor(['--help'])).toEqual(ALL);
    expect(commandsFor(['help', 'status'])).toEqual(ALL);
    expect(commandsFor(['stauts'])).toEqual(ALL);
    expect(commandsFor(['--', 'status'])).toEqual(ALL);
    expect(commandsFor(['--version', '--help'])).toEqual(ALL);
  });

  it('registers none for a bare --version, which still prints the version', async () => {
    expect(commandsFor(['--version'])).toEqual([]);
    expect(commandsFor(['--socket', '/tmp/s', '-V'])).toEqual([]);
    const io = bufferIO();
    expect(await main(['--version'], { io })).toBe(0);
    expect(io.out()).toBe(`${VERSION}\n`);
  });

  it('help still lists every command, and an unknown one still gets a suggestion and exit 2', async () => {
    const help = bufferIO();
    expect(await main(['--help'], { io: help })).toBe(0);
    for (const name of ALL) expect(help.out()).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    const typo = bufferIO();
    expect(await main(['stauts'], { io: typo })).toBe(2);
    expect(typo.err()).toContain("Did you mean status?");
  });
});
