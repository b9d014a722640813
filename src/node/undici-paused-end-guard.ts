import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

/**
 * undici 7.x crashes the process when an HTTP/1 response body is paused by backpressure (a slow
 * reader) and the upstream closes a connection that is not kept alive (`Connection: close`,
 * HTTP/1.0): the socket's 'end' or 'close' handler, or its 'error' handler on ECONNRESET, calls
 * the paused parser's finish(), which throws `assert(!this.paused)` from an event handler, where
 * no try/catch or stream error handler of ours can catch it (undici issues 5360 and 5474). The
 * fix is only in undici 8, which needs Node >= 22.19; our floor is 20 (Electron 32). Until the
 * floor rises (then: undici 8, and delete this file), no body is left paused across a socket end:
 * - the socket's end of stream (its `push(null)`) is held back while the parser is paused and
 *   handed over once the parser has resumed (the reader caught up) and parsed what was left, so
 *   the body completes, or fails with undici's own catchable error if it was cut short;
 * - a connection reset while the parser is paused reaches undici as a plain socket error (the
 *   request fails, catchably) instead of the ECONNRESET that undici would answer with finish().
 *
 * The hook is undici's public diagnostics channel `undici:client:connected`, which sees every
 * socket a Client connects (direct, through a proxy, tunnelled) after its HTTP/1 parser is
 * attached. Whether that parser is paused is undici's internal state
 * (`socket[Symbol(parser)].paused`); tests/undici-upstream.test.ts fails if that changes.
 */
const CONNECTED_CHANNEL = 'undici:client:connected';
const guarded = new WeakSet<Socket>();
let installed = false;

interface ParserLike {
  paused?: boolean;
}

/** Installs the guard for every undici socket connected from now on (idempotent). */
export function installPausedEndGuard(): void {
  if (installed) return;
  installed = true;
  diagnosticsChannel.subscribe(CONNECTED_CHANNEL, (message) => {
    const socket = (message as { socket?: unknown }).socket;
    if (isSocketLike(socket)) guardSocket(socket);
  });
}

function isSocketLike(value: unknown): value is Socket {
  return typeof value === 'object' && value !== null && typeof (value as Socket).emit === 'function' && typeof (value as Socket).read === 'function';
}

function parserOf(socket: Socket): ParserLike | null {
  const key = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === 'parser');
  if (key === undefined) return null;
  const parser = (socket as unknown as Record<symbol, unknown>)[key];
  return typeof parser === 'object' && parser !== null ? (parser as ParserLike) : null;
}

function isParserPaused(socket: Socket): boolean {
  return parserOf(socket)?.paused === true;
}

/** Keeps the socket's end of stream and resets away from a paused parser (see above). */
export function guardSocket(socket: Socket): void {
  if (guarded.has(socket)) return;
  guarded.add(socket);
  let heldEof = false;
  let releasing = false;
  const push = socket.push;
  const read = socket.read;
  const emit = socket.emit;

  socket.push = function guardedPush(this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null && isParserPaused(this)) {
      heldEof = true;
      return false;
    }
    return push.call(this, chunk, encoding);
  };

  socket.read = function guardedRead(this: Socket, size?: number): unknown {
    const chunk: unknown = read.call(this, size);
    // The parser's resume() reads what is left and then parses it: the end of stream goes after
    // that, and is held again if the parser paused once more meanwhile.
    if (heldEof && !releasing && !isParserPaused(this)) {
      releasing = true;
      process.nextTick(() => {
        releasing = false;
        if (this.destroyed || !heldEof || isParserPaused(this)) return;
        heldEof = false;
        push.call(this, null);
      });
    }
    return chunk;
  } as Socket['read'];

  socket.emit = function guardedEmit(this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    const [err] = args as [{ code?: unknown; message?: unknown } | undefined];
    if (event === 'error' && err?.code === 'ECONNRESET' && isParserPaused(this)) {
      const reset = Object.assign(new Error(`${String(err.message)} (while the response body was paused)`), { code: 'UND_ERR_SOCKET', cause: err });
      return Reflect.apply(emit, this, [event, reset]) as boolean;
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as Socket['emit'];
}
