import { parseArgs } from 'node:util';

/**
 * What every operator command is made of: its flags, its help, and how it runs. Commands
 * validate their input with the admin API's own zod schemas and call the same services,
 * so the CLI is a second door into one code path, not a second code path.
 */

/** Exit codes, listed in `gatehouse --help`; scripts switch on them. */
export const EXIT = {
  ok: 0,
  /** Invalid configuration, the database unreachable, anything unexpected. */
  failure: 1,
  /** Unknown command or flag, a missing argument, an invalid value. */
  usage: 2,
  /** No client, user or resource server with that id. */
  notFound: 3,
  /** The change clashes with what exists (an identifier or username taken, a client without a secret). */
  conflict: 4,
  /** Cancelled with Ctrl-C at a prompt (128 + SIGINT, as shells report it). */
  interrupted: 130,
} as const;

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** May be given more than once; the values are collected in order. */
  readonly multiple?: boolean;
  /** The value's placeholder in help, e.g. `NAME`. */
  readonly value?: string;
  readonly help: string;
  /** The request-body or query field this flag fills, so a field error can name the flag. */
  readonly field?: string;
}

/** Where a command writes: results on stdout, notes and errors on stderr. */
export interface Output {
  /** `--json` was given: stdout carries JSON only. */
  readonly json: boolean;
  out(text: string): void;
  err(text: string): void;
}

export interface Invocation {
  readonly positionals: readonly string[];
  readonly output: Output;
  /** A string flag's value (the last one, if it is repeatable). */
  string(name: string): string | undefined;
  /** Every value of a repeatable string flag, in order. */
  strings(name: string): string[];
  flag(name: string): boolean;
}

export interface Command {
  /** The words that name it: `['clients', 'create']`, or `['migrate']`. */
  readonly path: readonly string[];
  /** Positional arguments as shown in usage, e.g. `CLIENT_ID` or `[ALG ...]`. */
  readonly args?: string;
  readonly positionals?: { readonly min: number; readonly max: number };
  /** Where fields that no option fills come from (`{ algs: 'ALG' }`), so a field error can say. */
  readonly fieldSources?: Readonly<Record<string, string>>;
  /** What follows the command words in the usage line, when `args [options]` says too little. */
  readonly usage?: string;
  /** One line for `gatehouse --help`. */
  readonly summary: string;
  /** Paragraphs for the command's own help. */
  readonly description: readonly string[];
  readonly options?: Readonly<Record<string, OptionSpec>>;
  readonly examples: readonly string[];
  run(invocation: Invocation): Promise<number>;
}

/** Flags every command takes. */
export const COMMON_OPTIONS: Readonly<Record<string, OptionSpec & { short?: string }>> = {
  json: { type: 'boolean', help: 'print machine-readable JSON on stdout (errors stay lines on stderr)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** A mistake in how the command was called: reported with the usage line, exit code 2. */
export class UsageError extends Error {
  readonly code = 'usage' as const;

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure the command already explained, with the exit code to leave with. */
export class CliExit extends Error {
  readonly code = 'exit' as const;

  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliExit';
  }
}

export function commandName(command: Command): string {
  return `gatehouse ${command.path.join(' ')}`;
}

export function usageLine(command: Command): string {
  const tail = command.usage ?? [command.args, command.options === undefined ? undefined : '[options]'].filter((part) => part !== undefined).join(' ');
  return `usage: ${commandName(command)}${tail === '' ? '' : ` ${tail}`} [--json]`;
}

export interface ParsedCommandLine {
  readonly help: boolean;
  readonly json: boolean;
  readonly positionals: readonly string[];
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
}

/**
 * node:util parseArgs, non-strict so that every mistake gets a message of our own (its strict
 * messages suggest `--` tricks): unknown flags, a flag missing its value, a value for a switch,
 * a flag given twice, too many or too few arguments.
 */
export function parseCommandLine(command: Command, args: readonly string[]): ParsedCommandLine {
  const specs: Record<string, OptionSpec & { short?: string }> = { ...command.options, ...COMMON_OPTIONS };
  const options = Object.fromEntries(
    Object.entries(specs).map(([name, spec]) => [name, { type: spec.type, multiple: spec.multiple === true, ...(spec.short === undefined ? {} : { short: spec.short }) }]),
  );
  const { values, positionals, tokens } = parseArgs({ args: [...args], options, allowPositionals: true, strict: false, tokens: true });
  if (values['help'] === true) return { help: true, json: values['json'] === true, positionals, values };

  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = Object.hasOwn(specs, token.name) ? specs[token.name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown option ${token.rawName}`);
    if (spec.type === 'string') {
      if (token.value === undefined) throw new UsageError(`${token.rawName} needs a value`);
      // `--name --json` would otherwise take "--json" as the name.
      if (!token.inlineValue && token.value.startsWith('-') && token.value !== '-') {
        throw new UsageError(`${token.rawName} needs a value (write ${token.rawName}=${token.value} if the value starts with "-")`);
      }
    } else if (token.inlineValue === true) {
      throw new UsageError(`${token.rawName} takes no value`);
    }
    if (spec.multiple !== true && seen.has(token.name)) throw new UsageError(`${token.rawName} given more than once`);
    seen.add(token.name);
  }

  const { min, max } = command.positionals ?? { min: 0, max: 0 };
  if (positionals.length < min) throw new UsageError(`missing ${command.args ?? 'arguments'}`);
  if (positionals.length > max) throw new UsageError(`unexpected argument "${positionals[max]}"`);
  return { help: false, json: values['json'] === true, positionals, values };
}

export function invocationOf(parsed: ParsedCommandLine, output: Output): Invocation {
  const raw = (name: string) => parsed.values[name];
  return {
    positionals: parsed.positionals,
    output,
    string(name) {
      const value = raw(name);
      const last = Array.isArray(value) ? value.at(-1) : value;
      return typeof last === 'string' ? last : undefined;
    },
    strings(name) {
      const value = raw(name);
      return (Array.isArray(value) ? value : value === undefined ? [] : [value]).filter((item): item is string => typeof item === 'string');
    },
    flag(name) {
      return raw(name) === true;
    },
  };
}

const WIDTH = 100;

function wrap(text: string, indent: number, firstIndent = indent): string[] {
  const lines: string[] = [];
  let line = ' '.repeat(firstIndent);
  let empty = true;
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (!empty && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(indent);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** A long example command, broken before its options with shell line continuations. */
function shellLines(example: string): string[] {
  const [head = '', ...options] = example.split(/ (?=--)/);
  const lines: string[] = [];
  let line = `  ${head}`;
  for (const option of options) {
    if (line.length + 1 + option.length + 2 > WIDTH) {
      lines.push(`${line} \\`);
      line = `      ${option}`;
    } else line += ` ${option}`;
  }
  lines.push(line);
  return lines;
}

function optionLabel(name: string, spec: OptionSpec & { short?: string }): string {
  const value = spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : '';
  return `${spec.short === undefined ? '' : `-${spec.short}, `}--${name}${value}`;
}

/** `gatehouse <group> <command> --help`. */
export function commandHelp(command: Command): string {
  const lines = [usageLine(command), ''];
  for (const paragraph of command.description) lines.push(...wrap(paragraph, 0), '');
  const specs: [string, OptionSpec & { short?: string }][] = [...Object.entries(command.options ?? {}), ...Object.entries(COMMON_OPTIONS)];
  const labels = specs.map(([name, spec]) => optionLabel(name, spec));
  const column = Math.min(Math.max(...labels.map((label) => label.length)) + 4, 34);
  lines.push('options:');
  specs.forEach(([, spec], index) => {
    const label = `  ${labels[index] ?? ''}`;
    const help = spec.multiple === true ? `${spec.help}; repeatable` : spec.help;
    const [first = '', ...rest] = wrap(help, column);
    if (label.length + 2 <= column) lines.push(label + first.slice(label.length), ...rest);
    else lines.push(label, first, ...rest);
  });
  if (command.examples.length > 0) {
    lines.push('', 'examples:');
    for (const example of command.examples) lines.push(...shellLines(example));
  }
  return `${lines.join('\n')}\n`;
}

/** Aligned columns with a header row; empty cells show as "-". */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => (cell === '' ? '-' : cell)))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return cells.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}

function cellText(value: unknown): string {
  if (value === null) return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.join(' ');
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** `key: value` lines for one record; arrays space-separated, objects as JSON, null as "-". */
export function record(fields: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(fields).filter(([, value]) => value !== undefined);
  const width = Math.max(...entries.map(([key]) => key.length)) + 2;
  return entries.map(([key, value]) => `${`${key}:`.padEnd(width)}${cellText(value)}`).join('\n') + '\n';
}

export function printJson(output: Output, value: unknown): void {
  output.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Under a human-readable list: how to get the next page. */
export function pageHint(output: Output, nextCursor: string | null): void {
  if (nextCursor !== null) output.err(`(more: run again with --cursor ${nextCursor})\n`);
}

/** `--limit` and `--cursor`, as every admin API list takes them. */
export const PAGE_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  limit: { type: 'string', value: 'N', field: 'limit', help: 'at most N items (default 50, at most 200)' },
  cursor: { type: 'string', value: 'CURSOR', field: 'cursor', help: 'the page after the one that printed this cursor' },
};

/** The page query as the admin API's list schemas take it (strings, as from a URL query). */
export function pageQueryOf(invocation: Invocation): Record<string, string> {
  const query: Record<string, string> = {};
  const limit = invocation.string('limit');
  const cursor = invocation.string('cursor');
  if (limit !== undefined) query['limit'] = limit;
  if (cursor !== undefined) query['cursor'] = cursor;
  return query;
}
