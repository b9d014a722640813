/**
 * Fills the service-manager templates shipped in `systemd/` and `launchd/` (DESIGN section 9).
 *
 * Pure string work on purpose: `tokenbroker service install` reads the template files from the
 * package directory, passes their text in here, and writes the result itself. That keeps this
 * module testable without a file system and lets `--dry-run` print exactly what would be written.
 */

/** Unit and plist file names as installed, and the templates' paths inside the package. */
import { LAUNCHD_LABEL, LAUNCHD_PLIST, SYSTEMD_SERVICE_UNIT, SYSTEMD_SOCKET_UNIT } from '../../protocol/service-names.js';

export { LAUNCHD_LABEL, LAUNCHD_PLIST, SYSTEMD_SERVICE_UNIT, SYSTEMD_SOCKET_UNIT };
export const TEMPLATE_FILES = {
  systemdSocket: `systemd/${SYSTEMD_SOCKET_UNIT}`,
  systemdService: `systemd/${SYSTEMD_SERVICE_UNIT}`,
  launchdPlist: `launchd/${LAUNCHD_PLIST}`,
} as const;

/** Placeholder values by name, without the `@` signs: `{ NODE: '/usr/bin/node' }` fills `@NODE@`. */
export type TemplateValues = Readonly<Record<string, string>>;

/** Turns a raw value into text that is safe at the placeholder's position in the file format. */
export type ValueEncoder = (value: string, name: string) => string;

/** A template or a value that cannot be turned into a correct file. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

/*
 * Lower case is matched too, so that a typo such as `@Node@` in a template is reported as a
 * missing value instead of being written out verbatim. Nothing else in the templates looks like
 * this: unit specifiers use `%`, and `user@.service`-style names have a dot after the `@`.
 */
const PLACEHOLDER = /@([A-Za-z_][A-Za-z0-9_]*)@/g;

/**
 * Replaces every `@NAME@` in `template` with `encode(values.NAME)`.
 *
 * Throws a TemplateError naming every placeholder that has no value, so a template and the
 * installer can never drift apart silently into a unit that runs `@ENTRY@`. Substitution is a
 * single pass: a value that itself contains `@X@` (a strange but legal path) is not expanded again.
 */
export function fillTemplate(template: string, values: TemplateValues, encode: ValueEncoder = (value) => value): string {
  const missing: string[] = [];
  const filled = template.replace(PLACEHOLDER, (match, name: string) => {
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    if (value === undefined) {
      if (!missing.includes(match)) missing.push(match);
      return match;
    }
    return encode(value, name);
  });
  if (missing.length > 0) {
    throw new TemplateError(`no value for template placeholder${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  }
  return filled;
}

/** XML character data / attribute text. */
export function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => XML_ENTITIES[ch] ?? ch);
}

const XML_ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** Words that need no quoting in a unit file command line (after `%` and `$` are doubled). */
const SYSTEMD_PLAIN_WORD = /^[A-Za-z0-9_/.,:+=@%$-]+$/;

/**
 * Encodes one argument word of an `ExecStart=` command line (systemd.service "COMMAND LINES",
 * systemd.syntax "Quoting") so that the process receives exactly `value`:
 * - `%` starts a specifier (`%t`, `%h`) even inside quotes, so it is doubled;
 * - `$` starts an environment variable in arguments, so it is doubled;
 * - whitespace, quotes, backslashes and anything else unusual are wrapped in double quotes with
 *   C-style escapes for `\` and `"`.
 * Control characters cannot be written into a unit file line at all, so they are rejected.
 */
export function quoteSystemdArgument(value: string): string {
  rejectUnrepresentable(value);
  return quoteWord(value.replace(/%/g, '%%').replace(/\$/g, '$$$$'));
}

/**
 * Encodes the executable (first word) of an `ExecStart=` line. It follows different rules than
 * the arguments, measured with systemd 252 (`systemd-analyze verify`, and a real user manager):
 * - `$` is NOT expanded there, so it must stay single (`$$` would stay `$$` in the path);
 * - systemd refuses an executable containing `\`, `"` or `'` however it is quoted ("Executable
 *   name contains special characters", a fatal unit error), so such a path is rejected here with
 *   a message that says what to do, instead of a unit that never starts.
 */
export function quoteSystemdExecutable(value: string): string {
  rejectUnrepresentable(value);
  if (/[\\"']/.test(value)) {
    throw new TemplateError(
      `systemd cannot start an executable whose path contains a quote or a backslash: ${JSON.stringify(value)}; install node under a path without them`,
    );
  }
  return quoteWord(value.replace(/%/g, '%%'));
}

function quoteWord(escaped: string): string {
  if (SYSTEMD_PLAIN_WORD.test(escaped)) return escaped;
  return `"${escaped.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}

function rejectUnrepresentable(value: string): void {
  if (value === '') throw new TemplateError('an empty word cannot be written into a unit file command line');
  if (hasControlCharacter(value)) {
    throw new TemplateError(`${JSON.stringify(value)} contains a control character, which a systemd unit file cannot express`);
  }
}

/**
 * Which placeholder sits where on the `ExecStart=` line of `systemd/tokenbroker.service`
 * (`@NODE@ @ENTRY@ daemon`): the executable and the argument are quoted by different rules.
 */
const SYSTEMD_ENCODERS: Readonly<Record<string, (value: string) => string>> = {
  NODE: quoteSystemdExecutable,
  ENTRY: quoteSystemdArgument,
};

function encodeSystemdValue(value: string, name: string): string {
  const encode = SYSTEMD_ENCODERS[name];
  if (encode === undefined) throw new TemplateError(`no systemd quoting rule for placeholder @${name}@`);
  return encode(value);
}

export interface SystemdUnitPaths {
  /** Absolute path of the node binary. */
  node: string;
  /** Absolute path of the CLI entry script (run as `node entry daemon`). */
  entry: string;
}

export interface SystemdUnitTexts {
  socket: string;
  service: string;
}

/**
 * Fills `systemd/tokenbroker.socket` and `systemd/tokenbroker.service` (texts passed in, as read
 * from the package) for `~/.config/systemd/user/`.
 */
export function renderSystemdUnits(paths: SystemdUnitPaths, templates: SystemdUnitTexts): SystemdUnitTexts {
  const values: TemplateValues = {
    NODE: requireAbsolute('node', paths.node),
    ENTRY: requireAbsolute('entry', paths.entry),
  };
  return {
    socket: fillTemplate(templates.socket, values, encodeSystemdValue),
    service: fillTemplate(templates.service, values, encodeSystemdValue),
  };
}

export interface LaunchdPlistPaths extends SystemdUnitPaths {
  /** Absolute directory for the agent's stdout/stderr, normally `~/Library/Logs/tokenbroker`. */
  logDir: string;
}

/** Fills `launchd/com.nordicsemi.tokenbroker.plist` (text passed in) for `~/Library/LaunchAgents/`. */
export function renderLaunchdPlist(paths: LaunchdPlistPaths, template: string): string {
  const values: TemplateValues = {
    NODE: requireAbsolute('node', paths.node),
    ENTRY: requireAbsolute('entry', paths.entry),
    // The template appends `/name.log`; a trailing slash would only make the path look odd.
    LOGDIR: requireAbsolute('logDir', paths.logDir).replace(/(.)\/+$/, '$1'),
  };
  return fillTemplate(template, values, escapeXml);
}

/*
 * launchd does not expand `~` or search PATH for ProgramArguments, and systemd resolves a
 * relative executable against its own fixed search path, not the user's: both need absolute paths.
 * Control characters are refused here for both formats: systemd cannot express them, and XML 1.0
 * either forbids them or (CR, tab) lets a parser normalise them into a different path.
 */
function requireAbsolute(what: string, value: string): string {
  if (!value.startsWith('/')) throw new TemplateError(`${what} must be an absolute path, got ${JSON.stringify(value)}`);
  if (hasControlCharacter(value)) throw new TemplateError(`${what} path ${JSON.stringify(value)} contains a control character`);
  return value;
}

function hasControlCharacter(value: string): boolean {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return /[\u0000-\u001f\u007f]/.test(value);
}
