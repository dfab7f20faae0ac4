import { Worker } from 'node:worker_threads';
import type { JweRecipient } from './jwe.js';

/**
 * Where the inner layer and whole-token JWEs are built (SPEC §3).
 *
 * Each one costs an ECDH key agreement (about 100 µs of CPU for P-256), which on the event loop
 * would be the largest single cost of an inner token. With `threads > 0` the work goes to worker
 * threads (src/tokens/crypto-worker.ts, the same src/tokens/jwe.ts code), batched per turn of the
 * event loop, so the event loop keeps serving requests on one core while another does the ECDH.
 * The output is the same JWE either way; only where the CPU time is spent changes.
 *
 * A worker that dies does not fail requests: its jobs are finished on the event loop and a new
 * worker is started on later demand.
 */
export interface JweEncryptor {
  encrypt(recipient: JweRecipient, plaintext: string, options?: { extraHeader?: Record<string, string>; escrowKey?: Buffer }): Promise<string>;
  /** Stops the worker threads; jobs still queued finish on the event loop. */
  close(): Promise<void>;
  /** JWEs built so far by worker threads and on the event loop. */
  counts(): { readonly worker: number; readonly eventLoop: number };
}

/** One job as posted to a worker: the key travels as its JWK text, which the worker imports once. */
export interface EncryptJob {
  readonly id: number;
  readonly recipient: string;
  readonly plaintext: string;
  readonly extraHeader?: Record<string, string>;
  readonly escrowKey?: Uint8Array;
}

export type EncryptResult = { readonly id: number; readonly jwe: string } | { readonly id: number; readonly error: string };

interface Pending {
  readonly job: EncryptJob;
  readonly recipient: JweRecipient;
  readonly resolve: (jwe: string) => void;
  readonly reject: (error: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly inFlight: Map<number, Pending>;
}

/** After a worker died, jobs stay on the event loop this long before a new worker is tried. */
const RESPAWN_DELAY_MS = 1_000;
const WORKER_URL = new URL('./crypto-worker.js', import.meta.url);

export interface JweEncryptorOptions {
  /** Worker threads; 0 builds every JWE on the event loop. */
  readonly threads: number;
  readonly onWorkerError?: (error: Error) => void;
  /** The worker script (tests substitute one that fails). */
  readonly workerUrl?: URL;
}

export function createJweEncryptor(options: JweEncryptorOptions): JweEncryptor {
  const slots: (Thread | undefined)[] = Array.from({ length: options.threads }, () => undefined);
  let queue: Pending[] = [];
  let flushScheduled = false;
  let nextId = 0;
  let lastFailure = -Infinity;
  let closed = false;
  const counts = { worker: 0, eventLoop: 0 };

  function encryptInline(pending: Pending): void {
    counts.eventLoop++;
    try {
      const { job, recipient } = pending;
      const escrowKey = job.escrowKey === undefined ? undefined : Buffer.from(job.escrowKey);
      pending.resolve(recipient.encrypt(job.plaintext, job.extraHeader, escrowKey));
    } catch (error) {
      pending.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  function retire(thread: Thread, error: Error | undefined): void {
    const index = slots.indexOf(thread);
    if (index < 0) return;
    slots[index] = undefined;
    if (error !== undefined) {
      lastFailure = performance.now();
      options.onWorkerError?.(error);
    }
    const orphans = [...thread.inFlight.values()];
    thread.inFlight.clear();
    for (const pending of orphans) encryptInline(pending);
  }

  function spawn(index: number): Thread | undefined {
    if (closed || performance.now() - lastFailure < RESPAWN_DELAY_MS) return undefined;
    let worker: Worker;
    try {
      worker = new Worker(options.workerUrl ?? WORKER_URL);
    } catch (error) {
      lastFailure = performance.now();
      options.onWorkerError?.(error as Error);
      return undefined;
    }
    const thread: Thread = { worker, inFlight: new Map() };
    // An idle worker must not keep the process alive; a busy one must (see settle).
    worker.unref();
    worker.on('message', (results: EncryptResult[]) => {
      for (const result of results) {
        const pending = thread.inFlight.get(result.id);
        if (pending === undefined) continue;
        thread.inFlight.delete(result.id);
        counts.worker++;
        if ('jwe' in result) pending.resolve(result.jwe);
        else pending.reject(new Error(result.error));
      }
      if (thread.inFlight.size === 0) worker.unref();
    });
    worker.on('error', (error) => retire(thread, error));
    worker.on('exit', (code) => retire(thread, closed ? undefined : new Error(`crypto worker exited with code ${code}`)));
    slots[index] = thread;
    return thread;
  }

  function pickThread(): Thread | undefined {
    let best: Thread | undefined;
    for (let index = 0; index < slots.length; index++) {
      const thread = slots[index] ?? spawn(index);
      if (thread !== undefined && (best === undefined || thread.inFlight.size < best.inFlight.size)) best = thread;
    }
    return best;
  }

  function flush(): void {
    flushScheduled = false;
    const batch = queue;
    queue = [];
    const thread = pickThread();
    if (thread === undefined) {
      for (const pending of batch) encryptInline(pending);
      return;
    }
    if (thread.inFlight.size === 0) thread.worker.ref();
    for (const pending of batch) thread.inFlight.set(pending.job.id, pending);
    thread.worker.postMessage(batch.map((pending) => pending.job));
  }

  return {
    encrypt(recipient, plaintext, { extraHeader, escrowKey } = {}) {
      return new Promise<string>((resolve, reject) => {
        const job: EncryptJob = {
          id: nextId++,
          recipient: recipient.source,
          plaintext,
          ...(extraHeader === undefined ? {} : { extraHeader }),
          // A copy of just these bytes: a pooled Buffer's whole backing store would be cloned.
          ...(escrowKey === undefined ? {} : { escrowKey: new Uint8Array(escrowKey) }),
        };
        const pending: Pending = { job, recipient, resolve, reject };
        if (slots.length === 0 || closed) {
          encryptInline(pending);
          return;
        }
        queue.push(pending);
        if (!flushScheduled) {
          flushScheduled = true;
          // One message per turn of the event loop, carrying every job that turn produced.
          setImmediate(flush);
        }
      });
    },
    async close() {
      closed = true;
      const threads = slots.filter((thread): thread is Thread => thread !== undefined);
      await Promise.all(threads.map((thread) => thread.worker.terminate()));
      for (const thread of threads) retire(thread, undefined);
    },
    counts: () => ({ ...counts }),
  };
}
