import { CliExit, EXIT, UsageError } from './command.js';

/**
 * A password for `users create`: from GATEHOUSE_PASSWORD, else piped on stdin (one line, its
 * line ending dropped), else typed at a hidden prompt, twice. Never a flag: flags end up in
 * shell history and in `ps` for every user of the machine to read.
 */
export async function readPassword(fromEnvironment: string | undefined, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (fromEnvironment !== undefined) return fromEnvironment;
  if (stdin.isTTY) {
    const first = await promptHidden(stdin, 'Password: ');
    const second = await promptHidden(stdin, 'Repeat it: ');
    if (first !== second) throw new UsageError('the two passwords differ');
    if (first === '') throw new UsageError('no password typed');
    return first;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(chunk as Buffer);
  const piped = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (piped === '') throw new UsageError('no password: set GATEHOUSE_PASSWORD or pipe it on stdin (never a flag: flags end up in shell history and ps)');
  return piped;
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
