import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { profileMarkdown, summarizeProfileFile } from './profile-summary.js';
import {
  alive,
  checksTable,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  ensureBuilt,
  envFlag,
  envNumber,
  fileStamp,
  fmt,
  freePort,
  log,
  median,
  onAbort,
  profileClockMicros,
  readRss,
  RESULTS_DIR,
  runBench,
  statCpuSeconds,
  sourceVersion,
  spawnChild,
  writeBenchOutput,
  type BenchDatabase,
  type Check,
} from './support.js';

/**
 * `npm run bench:startup`: how long Gatehouse takes from `node dist/main.js` (the production build,
 * as `npm start` and the Docker image run it) to its first `/readyz` 200, and how much memory it
 * holds once idle, on PGlite and on PostgreSQL (issue "Performance": ready ≤ 1 s on an existing
 * PGlite data dir).
 *
 * Starts, one after another, each stopped (SIGTERM, waited for) before the next:
 *   1. PGlite, fresh data dir: the first start (initdb, migrations, keys, bootstrap client);
 *   2. PGlite, the same data dir again, BENCH_STARTUP_RESTARTS times: the median is the figure;
 *   3. PostgreSQL (a fresh bench database): a first start, then BENCH_STARTUP_RESTARTS restarts.
 * For each: spawn → first /readyz 200 (polled every 20 ms), the in-process `startupMs` Gatehouse
 * logs, the CPU time the process used until ready (all threads, and the main thread alone),
 * VmRSS after BENCH_STARTUP_SETTLE_MS idle, VmHWM (peak) so far, and how long SIGTERM took.
 * With BENCH_CPU_PROF=1, or when the target is not met, one more PGlite restart runs under
 * --cpu-prof and its top frames until ready are written beside the results.
 *
 * Environment (all optional):
 *   BENCH_STARTUP_RESTARTS=3     restarts per existing database
 *   BENCH_STARTUP_SETTLE_MS=1000 idle time after ready before memory is read
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (PostgreSQL rows skipped when unreachable)
 *   BENCH_CPU_PROF=1             profile one PGlite restart (also done when the target is not met)
 *   BENCH_ENFORCE=1              exit 1 when the target is not met
 *   BENCH_OUTPUT=<file>          the suite protocol (bench/run.ts)
 */

const settings = {
  restarts: envNumber('BENCH_STARTUP_RESTARTS', 3, 1, 20),
  settleMs: envNumber('BENCH_STARTUP_SETTLE_MS', 1000, 0, 30_000),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  cpuProf: envFlag('BENCH_CPU_PROF'),
  enforce: envFlag('BENCH_ENFORCE'),
};

const READY_TARGET_MS = 1_000;

/**
 * Preloaded into each Gatehouse started here: SIGTERM to itself once the benchmark is gone (its
 * parent pid changes), as bench/exit-with-parent.ts does for the other benches. That one reads
 * stdin, and an open stdin keeps the event loop alive, which changes the very start-up measured
 * here (see openPglite in src/db/database.ts); an unref'd timer holds nothing open. Inline
 * JavaScript, so the timed process does not load Node's TypeScript stripper (~30 ms) for it.
 */
const ORPHAN_GUARD =
  'data:text/javascript,const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, "SIGTERM"); }, 1000).unref();';
const POLL_MS = 20;
const START_DEADLINE_MS = 120_000;

interface Start {
  readonly readyMs: number;
  /** What Gatehouse logs as startupMs: from after configuration and logger to listening. */
  readonly inProcessMs: number | undefined;
  /** CPU time until ready, all threads (V8's compiler and GC threads included), and the main thread alone. */
  readonly cpuMs: number | undefined;
  readonly mainThreadCpuMs: number | undefined;
  readonly idleRssMiB: number | undefined;
  /** VmHWM when memory was read: the start-up's peak. */
  readonly peakRssMiB: number | undefined;
  readonly stopMs: number;
  readonly loadAverage: number;
}

/** utime + stime of a process (all threads) or of one thread, in ms. */
function cpuMs(statFile: string): number | undefined {
  const seconds = statCpuSeconds(statFile);
  return seconds === undefined ? undefined : seconds * 1000;
}

function startupMsFrom(stdout: string): number | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.includes('"startupMs"')) continue;
    try {
      const value = (JSON.parse(line) as { startupMs?: unknown }).startupMs;
      if (typeof value === 'number') return value;
    } catch {
      // Not a log line.
    }
  }
  return undefined;
}

/** Starts Gatehouse on `dataDir` (and `databaseUrl`), waits for /readyz 200, reads memory, stops it. */
async function startOnce(name: string, env: { dataDir: string; masterKey: string; databaseUrl?: string | undefined }, profile?: string): Promise<Start & { profileReadyMicros?: number }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const loadAverage = loadavg()[0] ?? 0;
  const nodeArgs = [
    ...(profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.dirname(profile)}`, `--cpu-prof-name=${path.basename(profile)}`]),
    // As `npm start` and the Dockerfile run it.
    '--max-old-space-size=512',
    '--experimental-async-context-frame',
    '--import',
    ORPHAN_GUARD,
    'dist/main.js',
  ];
  const started = performance.now();
  const child = spawnChild(name, nodeArgs, {
    // As `npm start` and the image run it.
    MALLOC_ARENA_MAX: '2',
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: url,
    DATA_DIR: env.dataDir,
    MASTER_KEY: env.masterKey,
    // A generated admin client is printed on every fresh start; a configured one is not.
    BOOTSTRAP_ADMIN_CLIENT_ID: 'bench-admin',
    BOOTSTRAP_ADMIN_CLIENT_SECRET: randomBytes(32).toString('base64url'),
    // info: the "gatehouse listening" line carries startupMs.
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...(env.databaseUrl === undefined ? {} : { DATABASE_URL: env.databaseUrl }),
  });
  const pid = child.process.pid;
  try {
    const deadline = Date.now() + START_DEADLINE_MS;
    for (;;) {
      if (!alive(child.process)) {
        await child.closed;
        throw new Error(`${name} exited (${child.process.exitCode ?? child.process.signalCode}) before ready:\n${child.output.stderr.slice(-4000)}${child.output.stdout.slice(-2000)}`);
      }
      const status = await fetch(`${url}/readyz`).then(
        (response) => response.status,
        () => 0,
      );
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`${name}: not ready within ${START_DEADLINE_MS} ms:\n${child.output.stderr.slice(-4000)}`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const readyMs = performance.now() - started;
    const profileReadyMicros = profileClockMicros();
    const cpu = pid === undefined ? undefined : cpuMs(`/proc/${pid}/stat`);
    const mainThreadCpu = pid === undefined ? undefined : cpuMs(`/proc/${pid}/task/${pid}/stat`);
    await new Promise((resolve) => setTimeout(resolve, settings.settleMs));
    const memory = pid === undefined ? undefined : readRss(pid);
    const stopping = performance.now();
    await child.stop();
    const stopMs = performance.now() - stopping;
    await child.closed;
    const result = {
      readyMs,
      inProcessMs: startupMsFrom(child.output.stdout),
      cpuMs: cpu,
      mainThreadCpuMs: mainThreadCpu,
      idleRssMiB: memory?.rssMiB,
      peakRssMiB: memory?.hwmMiB,
      stopMs,
      loadAverage,
      ...(profile === undefined ? {} : { profileReadyMicros }),
    };
    log(
      `${name}: ready in ${fmt(readyMs)} ms (in-process ${result.inProcessMs ?? '?'} ms), CPU ${result.cpuMs ?? '?'} ms (main thread ${result.mainThreadCpuMs ?? '?'}), ` +
        `idle RSS ${result.idleRssMiB === undefined ? '?' : fmt(result.idleRssMiB)} MiB, stop ${fmt(stopMs)} ms, load ${loadAverage.toFixed(1)}`,
    );
    return result;
  } finally {
    await child.stop();
  }
}

interface Row {
  readonly label: string;
  readonly starts: readonly Start[];
}

/** The median start by ready time (the one reported), over `starts`. */
function typical(starts: readonly Start[]): Start {
  return median(starts, (start) => start.readyMs);
}

const s = (ms: number | undefined) => (ms === undefined ? '?' : `${fmt(ms / 1000, 2)} s`);
const mib = (value: number | undefined) => (value === undefined ? '?' : `${fmt(value)} MiB`);

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly settings: typeof settings;
  readonly rows: Record<string, Row>;
  readonly checks: readonly Check[];
  readonly profile?: string;
}

function buildChecks(rows: Record<string, Row>): Check[] {
  const checks: Check[] = [];
  const existing = rows['pglite-existing'];
  if (existing !== undefined) {
    const ready = typical(existing.starts).readyMs;
    checks.push({
      name: `ready on an existing PGlite data dir (median of ${existing.starts.length} restarts)`,
      value: ready,
      display: s(ready),
      target: `≤ ${s(READY_TARGET_MS)}`,
      met: ready <= READY_TARGET_MS,
    });
  }
  const fresh = rows['pglite-fresh'];
  if (fresh !== undefined) {
    const ready = typical(fresh.starts).readyMs;
    checks.push({ name: 'ready on a fresh PGlite data dir (first start: initdb, migrations, keys)', value: ready, display: s(ready), target: '', met: undefined });
  }
  const postgres = rows['postgres-existing'];
  if (postgres !== undefined) {
    const ready = typical(postgres.starts).readyMs;
    checks.push({ name: `ready on PostgreSQL, existing database (median of ${postgres.starts.length} restarts)`, value: ready, display: s(ready), target: '', met: undefined });
  }
  for (const [key, what] of [
    ['pglite-existing', 'PGlite'],
    ['postgres-existing', 'PostgreSQL'],
  ] as const) {
    const row = rows[key];
    const rss = row === undefined ? undefined : typical(row.starts).idleRssMiB;
    if (rss !== undefined) checks.push({ name: `Gatehouse RSS at idle after start-up (${what})`, value: rss, display: mib(rss), target: '', met: undefined });
  }
  return checks;
}

function markdown(report: Report): string {
  const lines = [
    `## Gatehouse start-up, ${report.date}`,
    '',
    `node ${report.environment['node']}, ${report.environment['cpus']} × ${report.environment['cpuModel']}; source ${report.environment['source']}; ` +
      `load average ${report.environment['loadAverageAtStart']} at the start, ${report.environment['loadAverageAtEnd']} at the end.`,
    '',
    '`node --max-old-space-size=512 dist/main.js` (the production build, as `npm start` runs it) → first `/readyz` 200, polled every 20 ms. "in-process" is the `startupMs` Gatehouse logs ' +
      '(after configuration and logger, to listening); the rest is Node starting and loading the first modules, and the first /readyz. ' +
      '"CPU to ready" counts every thread of the process (V8 compiles PGlite\'s WASM and collects garbage on its own threads); on a shared ' +
      '2-core machine the wall time follows it more than the main thread alone.',
    '',
    '| start | runs | ready (median) | range | in-process | CPU to ready (main thread) | idle RSS | peak RSS | stop | load avg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of Object.values(report.rows)) {
    const t = typical(row.starts);
    const ready = row.starts.map((start) => start.readyMs);
    const range = row.starts.length > 1 ? `${s(Math.min(...ready))} – ${s(Math.max(...ready))}` : '';
    lines.push(
      `| ${row.label} | ${row.starts.length} | ${s(t.readyMs)} | ${range} | ${s(t.inProcessMs)} | ${s(t.cpuMs)} (${s(t.mainThreadCpuMs)}) | ` +
        `${mib(t.idleRssMiB)} | ${mib(t.peakRssMiB)} | ${s(t.stopMs)} | ${t.loadAverage.toFixed(1)} |`,
    );
  }
  lines.push(
    '',
    'Every figure in a row is from its median start (by ready time). Idle RSS is VmRSS after ' +
      `${fmt(report.settings.settleMs)} ms idle; peak RSS is VmHWM then (start-up's own peak).`,
    '',
    ...checksTable(report.checks),
    '',
  );
  if (report.profile !== undefined) lines.push(`Profile of one PGlite restart until ready: \`${report.profile}\`.`, '');
  return lines.join('\n');
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const stamp = fileStamp(startedAt);
  const loadAtStart = loadavg();
  await mkdir(RESULTS_DIR, { recursive: true });
  await ensureBuilt();

  const scratch = await mkdtemp(path.join(tmpdir(), 'gatehouse-bench-startup-'));
  let database: BenchDatabase | undefined;
  const cleanup = async () => {
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    await rm(scratch, { recursive: true, force: true });
  };
  onAbort(cleanup);

  try {
    const rows: Record<string, Row> = {};
    const masterKey = randomBytes(32).toString('base64url');
    const pglite = { dataDir: path.join(scratch, 'pglite'), masterKey };

    rows['pglite-fresh'] = { label: 'PGlite, fresh data dir (first start)', starts: [await startOnce('pglite fresh', pglite)] };
    const existing: Start[] = [];
    for (let i = 1; i <= settings.restarts; i++) existing.push(await startOnce(`pglite restart ${i}`, pglite));
    rows['pglite-existing'] = { label: 'PGlite, existing data dir', starts: existing };

    database = await createBenchDatabase(settings.databaseUrl);
    if (database.kind === 'postgres') {
      const postgres = { dataDir: path.join(scratch, 'postgres'), masterKey, databaseUrl: database.url };
      rows['postgres-fresh'] = { label: 'PostgreSQL, empty database (first start)', starts: [await startOnce('postgres fresh', postgres)] };
      const restarts: Start[] = [];
      for (let i = 1; i <= settings.restarts; i++) restarts.push(await startOnce(`postgres restart ${i}`, postgres));
      rows['postgres-existing'] = { label: 'PostgreSQL, existing database', starts: restarts };
    } else {
      log('PostgreSQL unreachable: its rows are skipped');
    }

    const checks = buildChecks(rows);
    let profile: string | undefined;
    const short = checks.some((check) => check.met === false);
    if (settings.cpuProf || short) {
      log(`profiling one PGlite restart under --cpu-prof${short ? ' (the target was not met)' : ''}`);
      const file = path.join(RESULTS_DIR, `gatehouse-startup-${stamp}.cpuprofile`);
      const run = await startOnce('pglite restart, --cpu-prof', pglite, file);
      // The profile's samples until ready only: not the idle wait or the shutdown.
      const summary = await summarizeProfileFile(file, 25, { startMicros: 0, endMicros: run.profileReadyMicros ?? Number.MAX_SAFE_INTEGER });
      const text = profileMarkdown(summary, `Gatehouse start-up on an existing PGlite data dir, main thread until ready (${path.basename(file)}, ready in ${s(run.readyMs)} under the profiler)`);
      profile = `startup-${stamp}-profile.md`;
      await writeFile(path.join(RESULTS_DIR, profile), text + '\n');
    }

    const loadAtEnd = loadavg();
    const load = (values: number[]) => values.map((value) => value.toFixed(2)).join(' / ');
    const report: Report = {
      date: startedAt.toISOString(),
      environment: {
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        loadAverageAtStart: load(loadAtStart),
        loadAverageAtEnd: load(loadAtEnd),
        source: sourceVersion(),
      },
      settings,
      rows,
      checks,
      ...(profile === undefined ? {} : { profile }),
    };
    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `startup-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `startup-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/startup-${stamp}.md and .json${profile === undefined ? '' : ` and ${profile}`}`);
    await writeBenchOutput({ title: 'Start-up and idle memory', markdown: text, checks, data: report });
    return settings.enforce && short ? 1 : 0;
  } finally {
    await cleanup();
  }
}

// Each start is bounded by START_DEADLINE_MS; the whole run normally takes 30-40 s.
await runBench((2 * settings.restarts + 4) * START_DEADLINE_MS, main);
