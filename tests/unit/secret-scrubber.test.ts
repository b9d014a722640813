import { describe, expect, it } from 'vitest';
import { SecretScrubber } from '../../src/broker/secret-scrubber.js';
import { withoutSecretHeaders } from '../../src/daemon/routes/fetch-routes.js';

const TOKEN = 'cmVmdGtuOjAxOjE3MDAwMDAwMDA6c2VjcmV0';

describe('SecretScrubber', () => {
  it('redacts a remembered token in plain, base64 and percent-encoded forms, and nothing before it is remembered', () => {
    const scrubber = new SecretScrubber();
    const text = `Bearer ${TOKEN} / ${Buffer.from(TOKEN).toString('base64')} / ${encodeURIComponent(`${TOKEN}+`)}`;
    expect(scrubber.scrub(text)).toBe(text);
    scrubber.remember(TOKEN);
    expect(scrubber.scrub(text)).toBe(`Bearer [redacted] / [redacted] / [redacted]${encodeURIComponent('+')}`);
    expect(scrubber.leaks(`x${TOKEN}x`)).toBe(true);
    expect(scrubber.leaks('nothing here')).toBe(false);
  });

  it('keeps the most recent tokens when the list is full', () => {
    const scrubber = new SecretScrubber();
    scrubber.remember(TOKEN);
    for (let i = 0; i < 64; i++) scrubber.remember(`candidate-token-${i}`);
    expect(scrubber.leaks(TOKEN)).toBe(false);
    expect(scrubber.leaks('candidate-token-63')).toBe(true);
    scrubber.remember(undefined);
    scrubber.remember('');
    expect(scrubber.scrub('')).toBe('');
  });

  it('drops relayed headers that carry a token, keeps the others', () => {
    const scrubber = new SecretScrubber();
    scrubber.remember(TOKEN);
    expect(withoutSecretHeaders({ etag: TOKEN, 'x-checksum-sha1': 'a'.repeat(40), 'content-length': '5', vary: ['a', TOKEN] }, scrubber)).toEqual({ 'x-checksum-sha1': 'a'.repeat(40), 'content-length': '5' });
  });
});
