import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { HELLO_PATH, helloMacMatches } from '../protocol/hello.js';
import type { DaemonKeyRead } from '../node/daemon-key.js';
import { DaemonNotAnsweringError, DaemonUnavailableError, UnverifiedDaemonError } from './client-errors.js';

/** What the handshake needs besides the connection. */
export interface HandshakeOptions {
  /** For messages. */
  socketPath: string;
  /**
   * The daemon keys this socket's daemon may have written (one per candidate state directory),
   * read after the answer: socket activation may start the daemon during the request.
   */
  readKeys(): Promise<DaemonKeyRead[]>;
  /** The pid of the daemon that should be there (its state-dir lock), to name a daemon that does not answer. */
  daemonPid(): Promise<number | undefined>;
  /** Bound on the answer: hello never waits on an upstream. */
  timeoutMs: number;
}

/** Answers larger than this are not a hello answer. */
const MAX_ANSWER_BYTES = 16 * 1024;

/**
 * The hello handshake on a freshly connected socket or pipe (DESIGN section 2): sends `GET
 * /v1/hello?nonce=N` as the connection's first bytes and resolves once the answer proves that the
 * other end holds the key of `state/daemon.key`. Rejects with UnverifiedDaemonError (anything that
 * is not such a proof), DaemonNotAnsweringError (no answer in time) or DaemonUnavailableError (the
 * connection broke). On success the connection carries nothing else yet and is handed to HTTP.
 */
export async function verifyDaemon(socket: Duplex, options: HandshakeOptions): Promise<void> {
  const nonce = randomBytes(16).toString('hex');
  const answer = await exchange(socket, `GET ${HELLO_PATH}?nonce=${nonce} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`, options);
  const refuse = (message: string, hint?: string): never => {
    throw new UnverifiedDaemonError(options.socketPath, message, hint);
  };
  if (answer.status === 404) {
    refuse('it does not answer the hello handshake (a tokenbroker daemon older than this client, or not tokenbroker at all)', 'Restart the daemon (`tokenbroker daemon restart`) so that the installed version runs.');
  }
  if (answer.status !== 200) refuse(`it answered the hello handshake with HTTP ${answer.status}`);
  let mac: unknown;
  try {
    mac = (JSON.parse(answer.body) as { mac?: unknown }).mac;
  } catch {
    refuse('its answer to the hello handshake is not JSON');
  }
  const keys = await options.readKeys();
  const usable = keys.flatMap((read) => (read.kind === 'ok' ? [read.key] : []));
  if (usable.some((key) => helloMacMatches(key, nonce, mac))) return;
  if (usable.length > 0) {
    refuse(
      'its answer to the hello handshake does not match the daemon key: another process may be posing as your daemon',
      'Stop whatever listens on the socket and start `tokenbroker daemon`; a client whose environment differs from the daemon\'s passes `stateDir`.',
    );
  }
  const refused = keys.find((read) => read.kind === 'refused');
  if (refused?.kind === 'refused') refuse(`the daemon key cannot be trusted: ${refused.reason}`, 'Remove the file; the daemon writes a new one (0600) when it starts.');
  refuse(
    'it answered the hello handshake, but there is no daemon key to check the answer against',
    'The daemon on this socket uses another state directory than this client: set TOKENBROKER_HOME (or pass `stateDir`) as for the daemon.',
  );
}

interface Answer {
  status: number;
  body: string;
}

/** One HTTP/1.1 request and its Content-Length answer, read by hand: HTTP proper starts after it. */
function exchange(socket: Duplex, request: string, options: HandshakeOptions): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (error: Error | undefined, answer?: Answer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (error !== undefined) reject(error);
      else resolve(answer as Answer);
    };
    const timer = setTimeout(() => {
      void options.daemonPid().then(
        (pid) => finish(new DaemonNotAnsweringError(options.socketPath, pid, options.timeoutMs)),
        () => finish(new DaemonNotAnsweringError(options.socketPath, undefined, options.timeoutMs)),
      );
    }, options.timeoutMs);
    const onError = (err: Error): void => finish(new DaemonUnavailableError(options.socketPath, { cause: err, reason: 'the connection broke during the hello handshake' }));
    const onClose = (): void => finish(new DaemonUnavailableError(options.socketPath, { reason: 'the daemon closed the connection during the hello handshake' }));
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      if (received.length > MAX_ANSWER_BYTES) {
        finish(new UnverifiedDaemonError(options.socketPath, 'its answer to the hello handshake is too large'));
        return;
      }
      const parsed = parseAnswer(received);
      if (parsed === 'incomplete') return;
      if (parsed === 'invalid') finish(new UnverifiedDaemonError(options.socketPath, 'its answer to the hello handshake is not valid HTTP'));
      else finish(undefined, parsed);
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.write(request);
  });
}

/** A complete answer, or 'incomplete'; bytes after the answer are 'invalid' (nothing else was asked). */
export function parseAnswer(bytes: Buffer): Answer | 'incomplete' | 'invalid' {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1) return 'incomplete';
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (status === null) return 'invalid';
  let length: number | undefined;
  let chunked = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon === -1) return 'invalid';
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'transfer-encoding') {
      if (value.toLowerCase() !== 'chunked') return 'invalid';
      chunked = true;
    }
    if (name === 'content-length') {
      if (!/^\d{1,6}$/.test(value) || (length !== undefined && length !== Number(value))) return 'invalid';
      length = Number(value);
    }
  }
  const rest = bytes.subarray(end + 4);
  const body = chunked && length === undefined ? dechunk(rest) : length !== undefined && !chunked ? fixedLength(rest, length) : 'invalid';
  return typeof body === 'string' ? body as 'incomplete' | 'invalid' : { status: Number(status[1]), body: body.toString('utf8') };
}

function fixedLength(rest: Buffer, length: number): Buffer | 'incomplete' | 'invalid' {
  if (rest.length < length) return 'incomplete';
  return rest.length > length ? 'invalid' : rest;
}

/** A chunked body without trailers (what Node's HTTP server sends for a body of unknown length). */
function dechunk(rest: Buffer): Buffer | 'incomplete' | 'invalid' {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n', at);
    if (lineEnd === -1) return rest.length - at > 10 ? 'invalid' : 'incomplete';
    const size = /^([0-9a-fA-F]{1,6})(?:;.*)?$/.exec(rest.subarray(at, lineEnd).toString('latin1'));
    if (size === null) return 'invalid';
    const length = parseInt(size[1] as string, 16);
    const dataStart = lineEnd + 2;
    if (rest.length < dataStart + length + 2) return 'incomplete';
    if (rest.subarray(dataStart + length, dataStart + length + 2).toString('latin1') !== '\r\n') return 'invalid';
    if (length === 0) return dataStart + 2 === rest.length ? Buffer.concat(parts) : 'invalid';
    parts.push(rest.subarray(dataStart, dataStart + length));
    at = dataStart + length + 2;
  }
}
