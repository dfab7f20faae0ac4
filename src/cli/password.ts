import { CliExit, EXIT, UsageError } from './command.js';

/** What a secret is called and where else it may come from. */
interface SecretSource {
  /** `password`, `client secret`. */
  readonly what: string;
  /** The environment variable that may hold it. */
  readonly variable: string;
  /** Typed twice at the prompt, for a secret the person makes up (not one pasted from elsewhere). */
  readonly confirm: boolean;
}

/**
 * A secret from its environment variable, else piped on stdin (one line, its line ending
 * dropped), else typed at a hidden prompt. Never a flag: flags end up in shell history and in
 * `ps` for every user of the machine to read.
 */
export async function readSecret(source: SecretSource, fromEnvironment: string | undefined, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (fromEnvironment !== undefined) return fromEnvironment;
  if (stdin.isTTY) {
    const first = await promptHidden(stdin, `${source.what[0]!.toUpperCase()}${source.what.slice(1)}: `);
    if (first === '') throw new UsageError(`no ${source.what} typed`);
    if (source.confirm && (await promptHidden(stdin, 'Repeat it: ')) !== first) throw new UsageError(`the two ${source.what}s differ`);
    return first;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(chunk as Buffer);
  const piped = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (piped === '') throw new UsageError(`no ${source.what}: set ${source.variable} or pipe it on stdin (never a flag: flags end up in shell history and ps)`);
  return piped;
}

/** A password for `users create` (GATEHOUSE_PASSWORD, stdin, or typed twice). */
export function readPassword(fromEnvironment: string | undefined, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  return readSecret({ what: 'password', variable: 'GATEHOUSE_PASSWORD', confirm: true }, fromEnvironment, stdin);
}

/** An upstream identity provider's client secret (GATEHOUSE_CLIENT_SECRET, stdin, or typed once: it is pasted). */
export function readClientSecret(fromEnvironment: string | undefined, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  return readSecret({ what: 'client secret', variable: 'GATEHOUSE_CLIENT_SECRET', confirm: false }, fromEnvironment, stdin);
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(stdin: NodeJS.ReadStream, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (char === '\u0003' || (char === '\u0004' && value === '')) {
          finish();
          reject(new CliExit('cancelled', EXIT.interrupted));
          return;
        }
        if (char === '\u007f' || char === '\b') value = [...value].slice(0, -1).join('');
        else if (char >= ' ') value += char;
      }
    };
    // Echo off before the prompt appears, so nothing typed after it is shown.
    stdin.setEncoding('utf8');
    stdin.setRawMode(true);
    process.stderr.write(prompt);
    stdin.resume();
    stdin.on('data', onData);
  });
}
