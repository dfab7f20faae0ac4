import { runCli } from './cli/index.js';

// The operator CLI's entry point (`npx gatehouse <command>`, through bin/gatehouse.js and
// dist/cli.js); the commands live in src/cli/.

// `gatehouse audit tail --follow | head` closes the pipe: that ends the command, quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

try {
  process.exitCode = await runCli(process.argv.slice(2));
} catch (error) {
  // runCli reports every failure itself; this is the last guard against a stack trace.
  process.stderr.write(`gatehouse: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
