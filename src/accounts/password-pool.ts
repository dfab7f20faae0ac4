import { fork, type ChildProcess } from 'node:child_process';
import argon2 from 'argon2';

/** The argon2 parameters a job carries (plain numbers: they cross the process boundary as JSON). */
export interface Argon2Params {
  readonly type: 0 | 1 | 2;
  readonly memoryCost: number;
  readonly timeCost: number;
  readonly parallelism: number;
}

/**
 * Where argon2 runs: a child process at a lower OS priority (src/accounts/password-process.ts).
 *
 * In this process argon2 would share libuv's thread pool with the WebCrypto calls oidc-provider
 * signs tokens with, and compete for the cores at the event loop's priority: a sign-in storm
 * then delays every token (issue 23: client-credentials p99 3.7× idle). In its own process it has
 * its own pool, and at a lower priority (niceness 5) the kernel gives the cores to the event loop
 * first whenever both want them; idle cores still go to hashing, so sign-in capacity stays.
 *
 * The child gets no secrets: an environment of its pool size and malloc's arena bound only, and
 * of Node's flags only the module loaders. A child that dies does not fail sign-ins: its jobs, and jobs for
 * a second after, run in this process as before, and a new child starts on later demand.
 */
export interface PasswordPool {
  hash(password: string): Promise<string>;
  /** With `hash` undefined, verifies against a dummy hash and resolves false. Rejects on a malformed hash. */
  verify(hash: string | undefined, password: string): Promise<boolean>;
  close(): Promise<void>;
  /** The hashing process once started: its pid and the niceness it reported. */
  process(): { readonly pid: number; readonly nice: number } | undefined;
  /** Jobs done so far by the hashing process and in this process. */
  counts(): { readonly process: number; readonly inProcess: number };
}

/** Argon2 parameters travel with each job: they are defined in one place (src/accounts/passwords.ts). */
export type PasswordJob =
  | { readonly id: number; readonly op: 'hash'; readonly params: Argon2Params; readonly password: string }
  | { readonly id: number; readonly op: 'verify'; readonly params: Argon2Params; readonly hash: string | null; readonly password: string };

export type PasswordProcessMessage =
  | { readonly ready: true; readonly nice: number }
  | { readonly id: number; readonly value: string | boolean }
  | { readonly id: number; readonly error: string };

export interface PasswordPoolOptions {
  /** For new hashes and the dummy hash of unknown accounts. */
  readonly params: Argon2Params;
  /** Hashes the caller runs at once at most: the child's libuv pool size (default 2). */
  readonly threads?: number;
  readonly onProcessError?: (error: Error) => void;
  /** The child's entry (tests substitute one that dies). */
  readonly processUrl?: URL;
}

interface Pending {
  readonly job: PasswordJob;
  readonly resolve: (value: string | boolean) => void;
  readonly reject: (error: Error) => void;
}

interface Child {
  readonly process: ChildProcess;
  nice: number | undefined;
  /** Sent, or waiting for the child's ready message. */
  readonly inFlight: Map<number, Pending>;
}

/**
 * Niceness of the password process (0 is everyone's default, 19 the lowest priority). At 5 the
 * kernel weighs it a third of a default task when both want a core, and a woken event loop
 * preempts it; lower still (10) starved sign-ins whenever the server was busy with anything else
 * (a flood of cheap requests) for no gain in token latency in bench:login.
 */
export const PASSWORD_PROCESS_NICE = 5;

/** After the child died, jobs run in this process this long before a new child is tried. */
const RESPAWN_DELAY_MS = 1_000;
/** What unknown accounts are verified against, so both paths cost one argon2 verify. */
export const DUMMY_PASSWORD = 'gatehouse dummy password for unknown accounts';
// Under tsx (tests, benches) the sources are .ts; the built server runs .js.
const PROCESS_URL = new URL(import.meta.url.endsWith('.ts') ? './password-process.ts' : './password-process.js', import.meta.url);

/**
 * Only module loaders carry over to the child (tsx under tests and benches): not an inspector or
 * profiler of the server's, its heap size, nor `-e`'s script.
 */
const LOADER_FLAG = /^(--import|--require|-r|--loader|--experimental-loader)(=|$)/;

function childExecArgv(): string[] {
  const kept: string[] = [];
  const args = process.execArgv;
  for (let index = 0; index < args.length; index++) {
    const match = LOADER_FLAG.exec(args[index]!);
    if (match === null) continue;
    kept.push(args[index]!);
    // Written as two arguments ("--import tsx"): its value too.
    if (match[2] === '' && index + 1 < args.length) kept.push(args[++index]!);
  }
  return kept;
}

function childEnv(threads: number): NodeJS.ProcessEnv {
  const malloc = process.env['MALLOC_ARENA_MAX'];
  // libuv's pool sized to the hashes that run at once: each idle thread would hold freed argon2 blocks.
  return { UV_THREADPOOL_SIZE: String(threads), ...(malloc === undefined ? {} : { MALLOC_ARENA_MAX: malloc }) };
}

/** Runs jobs with argon2 in the calling process: the child's loop, and the fallback here. */
export function passwordJobRunner(): (job: PasswordJob) => Promise<string | boolean> {
  let dummyHash: Promise<string> | undefined;
  return async (job) => {
    if (job.op === 'hash') return argon2.hash(job.password, job.params);
    if (job.hash === null) {
      dummyHash ??= argon2.hash(DUMMY_PASSWORD, job.params);
      await argon2.verify(await dummyHash, job.password);
      return false;
    }
    return argon2.verify(job.hash, job.password);
  };
}

export function createPasswordPool(options: PasswordPoolOptions): PasswordPool {
  let child: Child | undefined;
  let nextId = 0;
  let lastFailure = -Infinity;
  let closed = false;
  const counts = { process: 0, inProcess: 0 };

  const runInProcess = passwordJobRunner();

  function settleInProcess(pending: Pending): void {
    counts.inProcess++;
    runInProcess(pending.job).then(pending.resolve, (error: unknown) => pending.reject(error instanceof Error ? error : new Error(String(error))));
  }

  function retire(current: Child, error: Error | undefined): void {
    if (child !== current) return;
    child = undefined;
    if (error !== undefined) {
      lastFailure = performance.now();
      options.onProcessError?.(error);
    }
    const orphans = [...current.inFlight.values()];
    current.inFlight.clear();
    for (const pending of orphans) settleInProcess(pending);
  }

  // An idle child must not keep the server alive; a busy one must.
  function setRef(current: Child, on: boolean): void {
    const channel = current.process.channel as { ref(): void; unref(): void } | null | undefined;
    if (on) {
      current.process.ref();
      channel?.ref();
    } else {
      current.process.unref();
      channel?.unref();
    }
  }

  function spawn(): Child | undefined {
    if (closed || performance.now() - lastFailure < RESPAWN_DELAY_MS) return undefined;
    let forked: ChildProcess;
    try {
      forked = fork(options.processUrl ?? PROCESS_URL, [], { execArgv: childExecArgv(), env: childEnv(options.threads ?? 2), stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    } catch (error) {
      lastFailure = performance.now();
      options.onProcessError?.(error instanceof Error ? error : new Error(String(error)));
      return undefined;
    }
    const current: Child = { process: forked, nice: undefined, inFlight: new Map() };
    forked.on('message', (message: PasswordProcessMessage) => {
      if ('ready' in message) {
        current.nice = message.nice;
        for (const pending of current.inFlight.values()) forked.send(pending.job);
        return;
      }
      const pending = current.inFlight.get(message.id);
      if (pending === undefined) return;
      current.inFlight.delete(message.id);
      counts.process++;
      if ('error' in message) pending.reject(new Error(message.error));
      else pending.resolve(message.value);
      if (current.inFlight.size === 0) setRef(current, false);
    });
    forked.on('error', (error) => retire(current, error));
    forked.on('exit', (code, signal) => retire(current, closed ? undefined : new Error(`password process exited (${signal ?? `code ${code}`})`)));
    return current;
  }

  function submit(job: PasswordJob): Promise<string | boolean> {
    return new Promise((resolve, reject) => {
      const pending: Pending = { job, resolve, reject };
      child ??= spawn();
      if (child === undefined) {
        settleInProcess(pending);
        return;
      }
      if (child.inFlight.size === 0) setRef(child, true);
      child.inFlight.set(job.id, pending);
      // Before the ready message, the job waits in inFlight and is sent with it.
      if (child.nice !== undefined) child.process.send(job);
    });
  }

  return {
    hash: async (password) => (await submit({ id: nextId++, op: 'hash', params: options.params, password })) as string,
    verify: async (hash, password) => (await submit({ id: nextId++, op: 'verify', params: options.params, hash: hash ?? null, password })) === true,
    async close() {
      closed = true;
      const current = child;
      if (current === undefined || current.process.exitCode !== null || current.process.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => current.process.once('exit', () => resolve()));
      // An idle child is unref'd: without this the loop could end before its exit is seen.
      current.process.ref();
      current.process.kill();
      await exited;
    },
    process: () => (child?.process.pid === undefined || child.nice === undefined ? undefined : { pid: child.process.pid, nice: child.nice }),
    counts: () => ({ ...counts }),
  };
}
