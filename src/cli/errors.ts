import { ConfigError } from '../config.js';
import { EnvelopeError } from '../crypto/envelope.js';
import { InvalidTextError, isUnavailable } from '../db/database.js';
import { MigrationError } from '../db/migrator.js';
import { ManagementError } from '../management/errors.js';
import { CliExit, commandName, EXIT, UsageError, usageLine, type Command, type Output } from './command.js';

/** "No client with that client_id." → "no client with that client_id": one line in a CLI's voice. */
function sentence(detail: string): string {
  return detail.charAt(0).toLowerCase() + detail.slice(1).replace(/\.$/, '');
}

/** The option (or other source) that fills the field a JSON pointer names (`#/grant_types/0` → `--grant`). */
function flagFor(command: Command | undefined, pointer: string): string | undefined {
  const field = /^#\/([^/]+)/.exec(pointer)?.[1];
  if (field === undefined || command === undefined) return undefined;
  if (command.fieldSources !== undefined && Object.hasOwn(command.fieldSources, field)) return command.fieldSources[field];
  // Several flags may fill one field (--jwks-file or --certificate-file): name them all.
  const flags = Object.entries(command.options ?? {}).flatMap(([name, spec]) => (spec.field === field ? [`--${name}`] : []));
  return flags.length === 0 ? undefined : flags.join(' or ');
}

function exitCodeOf(error: ManagementError): number {
  switch (error.code) {
    case 'validation_failed':
      return EXIT.usage;
    case 'not_found':
      return EXIT.notFound;
    case 'conflict':
    case 'precondition_failed':
      return EXIT.conflict;
    default:
      return EXIT.failure;
  }
}

/**
 * Every failure becomes `gatehouse: ...` lines on stderr and an exit code (see EXIT); never a
 * stack trace. Field errors from the management services' schemas keep their JSON pointer and name the flag.
 */
export function reportError(error: unknown, output: Output, command?: Command): number {
  const line = (text: string) => output.err(`gatehouse: ${text}\n`);
  if (error instanceof UsageError) {
    line(error.message);
    output.err(command === undefined ? 'run "gatehouse --help" for the commands\n' : `${usageLine(command)}\nrun "${commandName(command)} --help" for details\n`);
    return EXIT.usage;
  }
  if (error instanceof CliExit) {
    if (error.message !== '') line(error.message);
    return error.exitCode;
  }
  // The one mapping of the management services' domain errors to lines and exit codes.
  if (error instanceof ManagementError) {
    const fields = error.errors ?? [];
    // A validation failure is its field errors; other problems say what happened, then which field.
    if (error.code !== 'validation_failed' || fields.length === 0) line(sentence(error.message));
    for (const field of fields) {
      const flag = flagFor(command, field.pointer);
      line(`${field.pointer}: ${field.detail}${flag === undefined ? '' : ` (${flag})`}`);
    }
    if (error.clientIds !== undefined) line(`clients: ${error.clientIds.join(' ')}`);
    return exitCodeOf(error);
  }
  if (error instanceof ConfigError) {
    for (const problem of error.problems) line(`invalid configuration: ${problem}`);
    return EXIT.failure;
  }
  if (error instanceof InvalidTextError) {
    line('input must not contain NUL characters or unpaired surrogates');
    return EXIT.usage;
  }
  if (error instanceof EnvelopeError) {
    line(error.code === 'envelope_unknown_key' ? `${error.message}: put the key that sealed it in MASTER_KEY_PREVIOUS` : error.message);
    return EXIT.failure;
  }
  if (error instanceof MigrationError) {
    line(error.message);
    return EXIT.failure;
  }
  if (isUnavailable(error)) {
    const cause = (error as Error).cause;
    const detail = cause instanceof Error && cause.message !== '' ? cause.message : (error as Error).message;
    line(`the database is unreachable (${detail}); check DATABASE_URL`);
    return EXIT.failure;
  }
  // pg's DatabaseError (a refused login, a missing database, a failed statement): say where it came from.
  const sqlstate = (error as { code?: unknown; severity?: unknown } | null)?.severity === undefined ? undefined : (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  line(typeof sqlstate === 'string' ? `database error: ${message} (SQLSTATE ${sqlstate})` : message);
  return EXIT.failure;
}
