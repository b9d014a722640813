import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/daemon/logger.js';

function memoryDestination(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text, lines: () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logger', () => {
  const secret = 'tbk-canary-log-9f8e7d';

  it('writes JSON lines at the configured level', () => {
    const dest = memoryDestination();
    const logger = createLogger({ level: 'warn', destination: dest.stream });
    logger.info('hidden');
    logger.warn({ server: 'nordic' }, 'shown');
    const lines = dest.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'shown', server: 'nordic' });
  });

  it('redacts tokens and authorization headers wherever they appear', () => {
    const dest = memoryDestination();
    const logger = createLogger({ level: 'info', destination: dest.stream });
    logger.info({ token: secret }, 'top-level token');
    logger.info({ req: { headers: { authorization: `Bearer ${secret}`, cookie: secret } } }, 'request');
    logger.info({ upstream: { headers: { authorization: `Bearer ${secret}` } } }, 'upstream');
    logger.info({ body: { token: secret } }, 'body');
    logger.child({ headers: { authorization: secret } }).info('child');
    logger.info({ authorization: secret }, 'bare header');
    expect(dest.text()).not.toContain(secret);
    expect(dest.lines()).toHaveLength(6);
    expect(dest.text()).toContain('[redacted]');
  });
});
