import type { Readable } from 'node:stream';

/**
 * Reads a small upstream body (JSON documents, icons, error bodies) with a size cap, so a hostile
 * or broken server cannot make the daemon buffer without bound. Over the cap: destroys the stream
 * and resolves `{ tooLarge: true }`.
 */
export async function readBodyCapped(body: Readable, maxBytes: number): Promise<{ bytes: Buffer; text: string; tooLarge: false } | { tooLarge: true }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > maxBytes) {
      body.destroy();
      return { tooLarge: true };
    }
    chunks.push(buffer);
  }
  const bytes = Buffer.concat(chunks);
  return { bytes, text: bytes.toString('utf8'), tooLarge: false };
}
