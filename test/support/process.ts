import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { waitFor } from './server.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface GatehouseProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  readonly output: { stdout: string; stderr: string };
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Runs a real Gatehouse process (`src/main.ts` or `src/cli.ts` through tsx) with exactly the
 * given environment plus PATH, so nothing leaks in from the test runner's own environment.
 * The management listener is off (MANAGEMENT_PORT=0) unless `env` names a port: processes of
 * test files running side by side would otherwise all bind the default 9000.
 * `stdin`, when given, is written to the process's stdin and closed; otherwise stdin is empty.
 */
export function spawnGatehouse(
  env: Record<string, string>,
  entry: 'main' | 'cli' = 'main',
  args: readonly string[] = [],
  options: { stdin?: string } = {},
): GatehouseProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/${entry}.ts`, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', MANAGEMENT_PORT: '0', ...env },
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  const output = { stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => (output.stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output.stderr += chunk.toString('utf8')));
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  return { child, output, exited, kill: (signal = 'SIGTERM') => void child.kill(signal) };
}

/** Polls /readyz until it answers 200. */
export async function waitUntilReady(baseUrl: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => (await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.status === 200, timeoutMs, 100);
}
