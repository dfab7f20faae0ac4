import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * A worker thread of `drivePaced` (bench/support.ts): POST /token at evenly spaced instants, an
 * open loop (a request never waits for an earlier one: each takes a free keep-alive connection,
 * or opens one), so each latency is one request's own. autocannon's `overallRate` instead sends
 * each connection's quota for the second back to back at the start of every second, so its
 * latencies measure that burst queueing, at idle too.
 */

export interface PacedProbeJob {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly seconds: number;
  readonly ratePerSecond: number;
}

export interface PacedProbeResult {
  /** Milliseconds from writing each request to the end of its response, in send order. */
  readonly latenciesMs: number[];
  /** How late each request left against its instant (this thread's own delay), ms. */
  readonly sendLagMs: number[];
  readonly non2xx: number;
  readonly errors: number;
  readonly durationSeconds: number;
}

const job = workerData as PacedProbeJob;
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const latenciesMs: number[] = [];
const sendLagMs: number[] = [];
let non2xx = 0;
let errors = 0;

function send(): Promise<void> {
  return new Promise((resolve) => {
    const started = performance.now();
    const request = http.request(job.url, { method: 'POST', agent, headers: job.headers, timeout: 10_000 }, (response) => {
      response.resume();
      response.on('end', () => {
        latenciesMs.push(performance.now() - started);
        if ((response.statusCode ?? 0) < 200 || (response.statusCode ?? 0) >= 300) non2xx++;
        resolve();
      });
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', () => {
      errors++;
      resolve();
    });
    request.end(job.body);
  });
}

const intervalMs = 1000 / job.ratePerSecond;
const count = Math.round(job.seconds * job.ratePerSecond);
const start = performance.now();
const inFlight: Promise<void>[] = [];
for (let index = 0; index < count; index++) {
  const due = start + index * intervalMs;
  const wait = due - performance.now();
  // Timers land up to a millisecond or so late: recorded as send lag, not in the latency.
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  sendLagMs.push(performance.now() - due);
  inFlight.push(send());
}
await Promise.all(inFlight);
agent.destroy();
parentPort?.postMessage({ latenciesMs, sendLagMs, non2xx, errors, durationSeconds: (performance.now() - start) / 1000 } satisfies PacedProbeResult);
