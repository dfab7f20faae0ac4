import { readdirSync } from 'node:fs';
import os from 'node:os';
import { PASSWORD_PROCESS_NICE, passwordJobRunner, type PasswordJob, type PasswordProcessMessage } from './password-pool.js';

// The password-hashing process of src/accounts/password-pool.ts: argon2 at a lower OS priority,
// with its own libuv pool, so a burst of sign-ins yields the cores to token signing.

// First thing, before argon2 starts libuv's pool: on Linux niceness is per thread and a new
// thread inherits its creator's, so the pool threads will have it. V8's threads exist already
// (its collector's helpers): each is set by its thread id.
let nice = 0;
try {
  os.setPriority(PASSWORD_PROCESS_NICE);
  nice = os.getPriority();
  for (const tid of readdirSync('/proc/self/task')) os.setPriority(Number(tid), PASSWORD_PROCESS_NICE);
} catch {
  // Not permitted, or no /proc (not Linux): still a pool of its own, the main thread lowered if it could be.
}

const run = passwordJobRunner();

process.on('message', (job: PasswordJob) => {
  void run(job).then(
    (value): PasswordProcessMessage => ({ id: job.id, value }),
    (error: unknown): PasswordProcessMessage => ({ id: job.id, error: error instanceof Error ? error.message : String(error) }),
  ).then((result) => process.send?.(result));
});
// The server went away (or closed us): nothing left to serve.
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true, nice } satisfies PasswordProcessMessage);
