import { commandHelp, EXIT, invocationOf, parseCommandLine, type Command, type Output } from './command.js';
import { adminClientCommands } from './commands/admin-client.js';
import { auditCommands } from './commands/audit.js';
import { clientCommands } from './commands/clients.js';
import { gatewayRouteCommands } from './commands/gateway-routes.js';
import { identityProviderCommands } from './commands/identity-providers.js';
import { keyCommands } from './commands/keys.js';
import { masterKeyCommands } from './commands/master-key.js';
import { migrateCommand } from './commands/migrate.js';
import { resourceServerCommands } from './commands/resource-servers.js';
import { userCommands } from './commands/users.js';
import { reportError } from './errors.js';

// The operator CLI (`npx gatehouse <command>`): the server's configuration, the admin API's
// schemas and services, one code path.

interface Group {
  readonly name: string;
  readonly about: string;
  readonly commands: readonly Command[];
}

const GROUPS: readonly Group[] = [
  { name: 'migrate', about: 'database migrations', commands: [migrateCommand] },
  { name: 'clients', about: 'OAuth clients: the services and apps that get tokens', commands: clientCommands },
  { name: 'resource-servers', about: 'resource servers: the APIs that accept Gatehouse access tokens', commands: resourceServerCommands },
  { name: 'gateway-routes', about: 'gateway routes: which requests the API gateway lets through', commands: gatewayRouteCommands },
  { name: 'users', about: 'people who sign in on the hosted pages', commands: userCommands },
  { name: 'identity-providers', about: 'upstream OpenID providers people sign in with (corporate SSO)', commands: identityProviderCommands },
  { name: 'keys', about: 'token signing keys', commands: keyCommands },
  { name: 'master-key', about: 'the MASTER_KEY that seals secrets at rest', commands: masterKeyCommands },
  { name: 'admin-client', about: 'clients for the admin API', commands: adminClientCommands },
  { name: 'audit', about: 'the audit trail of changes and sign-ins', commands: auditCommands },
];

interface Entry {
  readonly label: string;
  readonly summary: string;
}

function entriesOf(commands: readonly Command[]): Entry[] {
  return commands.map((command) => ({ label: [command.path.join(' '), command.args].filter((part) => part !== undefined).join(' '), summary: command.summary }));
}

/** One line per command: its words and arguments, then what it does. */
function commandLines(entries: readonly Entry[]): string {
  const column = Math.max(...entries.map((entry) => entry.label.length)) + 4;
  return entries.map((entry) => `  ${entry.label.padEnd(column - 2)}${entry.summary}`).join('\n');
}

const CONFIGURATION = `configuration: the server's environment variables, read the same way (see README):
  DATABASE_URL            PostgreSQL URL; unset: the embedded database (PGlite) in DATA_DIR
  DATA_DIR                embedded database and development key material (default ./data)
  MASTER_KEY              base64url 32-byte key that encrypts secrets at rest; required in production
  MASTER_KEY_PREVIOUS     comma-separated earlier master keys: what they sealed still opens (see
                          "master-key rewrap")
  ISSUER                  issuer identifier (default http://localhost:$PORT); must be the server's
  NODE_ENV                production refuses an http:// ISSUER and a missing MASTER_KEY
  BOOTSTRAP_ADMIN_CLIENT_ID, BOOTSTRAP_ADMIN_CLIENT_SECRET
                          ensure an admin client with these credentials exists
  LOG_LEVEL               pino level of the log lines written to stderr (default for the CLI: warn)
  GATEHOUSE_PASSWORD      the CLI's own: the password for "users create" (else read from stdin)
  GATEHOUSE_CLIENT_SECRET the CLI's own: the upstream client secret for "identity-providers create"
                          and "update --new-client-secret" (else read from stdin)

Every command except migrate and help prepares the database as the server does at start (pending
migrations, signing keys, the bootstrap admin client). With the embedded database, stop the server
first: only one process at a time may open DATA_DIR.`;

const EXIT_CODES = `exit codes:
  ${EXIT.ok}  success
  ${EXIT.failure}  failure: invalid configuration, database unreachable, anything unexpected
  ${EXIT.usage}  usage: unknown command or option, missing argument, invalid value (each field error is
     printed as "gatehouse: <JSON pointer>: <detail> (<option>)")
  ${EXIT.notFound}  not found: no client, user, resource server or signing key with that id
  ${EXIT.conflict}  conflict: e.g. the identifier or username is taken, the client has no secret, the key
     is already revoked`;

const USAGE = `usage: gatehouse <command> [arguments] [options] [--json]
       gatehouse <command> --help          what a command does, its options, examples`;

/** Every command, in the order `gatehouse --help` lists them. */
export const COMMANDS: readonly Command[] = GROUPS.flatMap((group) => group.commands);

function allCommands(): string {
  return commandLines([...entriesOf(COMMANDS), { label: 'help [COMMAND]', summary: "this text, or a command's help" }]);
}

/** For a mistake: the usage and the commands, without the reference parts. */
function shortUsage(): string {
  return `${USAGE}\n\ncommands:\n${allCommands()}\n\nRun "gatehouse --help" for the configuration and exit codes.\n`;
}

export function mainHelp(): string {
  return `${USAGE}

The Gatehouse operator CLI. It uses the same configuration, validation and services as the
admin API (/admin/v1), and records the same audit events, with actor "cli".

commands:
${allCommands()}

options every command takes:
  --json                  machine-readable output on stdout: the admin API's JSON for the same data
                          ("audit tail" writes one JSON object per line)
  -h, --help              the command's help

${CONFIGURATION}

${EXIT_CODES}
`;
}

function groupHelp(group: Group): string {
  return `usage: gatehouse ${group.name} <command> [arguments] [options] [--json]

${group.about.charAt(0).toUpperCase()}${group.about.slice(1)}.

commands:
${commandLines(entriesOf(group.commands))}

Run "gatehouse ${group.name} <command> --help" for a command's options and examples.
`;
}

const HELP_WORDS = new Set(['help', '--help', '-h']);

type Resolved = { command: Command; rest: readonly string[] } | { group: Group } | { unknown: string; group?: Group };

function resolve(argv: readonly string[]): Resolved {
  const [first = '', second] = argv;
  const group = GROUPS.find((candidate) => candidate.name === first);
  if (group === undefined) return { unknown: first };
  const [only] = group.commands;
  if (group.commands.length === 1 && only !== undefined && only.path.length === 1) return { command: only, rest: argv.slice(1) };
  if (second === undefined || HELP_WORDS.has(second)) return { group };
  const command = group.commands.find((candidate) => candidate.path[1] === second);
  return command === undefined ? { unknown: `${first} ${second}`, group } : { command, rest: argv.slice(2) };
}

function standardOutput(json: boolean): Output {
  return {
    json,
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  };
}

/** `gatehouse help`, `gatehouse help clients`, `gatehouse help clients create`. */
function help(argv: readonly string[], output: Output): number {
  if (argv.length === 0) {
    output.out(mainHelp());
    return EXIT.ok;
  }
  const resolved = resolve(argv);
  if ('command' in resolved) output.out(commandHelp(resolved.command));
  else if ('unknown' in resolved) return unknownCommand(resolved.unknown, resolved.group, output);
  else output.out(groupHelp(resolved.group));
  return EXIT.ok;
}

function unknownCommand(name: string, group: Group | undefined, output: Output): number {
  output.err(`gatehouse: unknown command "${name}"\n\n`);
  output.err(group === undefined ? shortUsage() : groupHelp(group));
  return EXIT.usage;
}

/** Runs one command line; resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const output = standardOutput(false);
  const [first] = argv;
  if (first === undefined) {
    output.err(shortUsage());
    return EXIT.usage;
  }
  if (HELP_WORDS.has(first)) return help(argv.slice(1), output);

  const resolved = resolve(argv);
  if ('unknown' in resolved) return unknownCommand(resolved.unknown, resolved.group, output);
  if ('group' in resolved) {
    const asked = argv[1] !== undefined;
    if (asked) output.out(groupHelp(resolved.group));
    else output.err(`gatehouse: "${resolved.group.name}" needs a command\n\n${groupHelp(resolved.group)}`);
    return asked ? EXIT.ok : EXIT.usage;
  }

  const { command, rest } = resolved;
  let parsed;
  try {
    parsed = parseCommandLine(command, rest);
  } catch (error) {
    return reportError(error, output, command);
  }
  if (parsed.help) {
    output.out(commandHelp(command));
    return EXIT.ok;
  }
  const commandOutput = standardOutput(parsed.json);
  try {
    return await command.run(invocationOf(parsed, commandOutput));
  } catch (error) {
    return reportError(error, commandOutput, command);
  }
}
