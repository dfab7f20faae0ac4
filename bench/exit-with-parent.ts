import { isMainThread } from 'node:worker_threads';

/**
 * Preloaded (`--import`) into every process the benchmark starts: when the benchmark goes away,
 * even by SIGKILL, the pipe on stdin closes and this process shuts itself down with SIGTERM
 * (a graceful stop, so `--cpu-prof` still writes its profile), then hard-exits 10 s later.
 * Worker threads inherit `--import` but have no such pipe (their stdin ends at once), so only the
 * main thread watches.
 */
if (isMainThread) {
  process.stdin.on('data', () => undefined);
  process.stdin.once('close', () => {
    process.kill(process.pid, 'SIGTERM');
    setTimeout(() => process.exit(1), 10_000).unref();
  });
}
