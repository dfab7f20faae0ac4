import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import {
  adminPost,
  basic,
  checksTable,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  drive,
  envFlag,
  envNumber,
  failOnBadResponses,
  fileStamp,
  fmt,
  launchGatehouse,
  log,
  median,
  onAbort,
  readRss,
  requestToken,
  RESULTS_DIR,
  runBench,
  sampleCpu,
  servesDatabase,
  sourceVersion,
  spawnChild,
  TOKEN_BODY,
  writeBenchOutput,
  type BenchDatabase,
  type Check,
  type CpuSample,
  type Gatehouse,
  type RunResult,
  type TokenTarget,
} from './support.js';

/**
 * `npm run bench:cluster`: does Gatehouse use a second core? Client-credentials throughput of
 * one Gatehouse with WORKERS=1 and one with WORKERS=2 (src/cluster.ts), both on the same
 * PostgreSQL database, for a plain and an inner resource server, with the same autocannon load as
 * bench:tokens. Within a row the two sides alternate in short slices (×1, ×2, ×2, ×1, ...) and
 * each side's slices are added up, so a burst of outside load (or of the host's other guests,
 * which no figure here sees) lands on both sides rather than on one.
 *
 * Beside tokens/s it reports who used the cores in each window (Linux /proc): Gatehouse (primary
 * and workers), PostgreSQL, the load generator (autocannon runs in this process) and anything
 * else. On a 2-core machine the load generator and PostgreSQL share the cores with the workers,
 * so the ratio is bounded by the cores left to Gatehouse, which the report shows next to it.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=6           measured seconds per row and side, in slices that alternate between the two sides
 *   BENCH_SLICE_SECONDS=2     length of one slice
 *   BENCH_WARMUP_SECONDS=3    warm-up per row and side
 *   BENCH_CONNECTIONS=16      autocannon connections (as bench:tokens)
 *   BENCH_WORKERS=2           the clustered instance's WORKERS
 *   BENCH_BOUND_MS=2000       time per machine-bound measurement (1 signer process, then WORKERS at once)
 *   BENCH_ROWS=plain,inner    a subset
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (PostgreSQL is required)
 *   BENCH_ENFORCE=1           exit 1 when the target is not met
 *   BENCH_OUTPUT=<file>       also write the suite's JSON there
 */

type RowName = 'plain' | 'inner';
const ALL_ROWS: readonly RowName[] = ['plain', 'inner'];

const settings = {
  seconds: envNumber('BENCH_SECONDS', 6, 1, 300),
  sliceSeconds: envNumber('BENCH_SLICE_SECONDS', 2, 1, 60),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 3, 0, 60),
  connections: envNumber('BENCH_CONNECTIONS', 16, 1, 256),
  workers: envNumber('BENCH_WORKERS', 2, 2, 64),
  boundMs: envNumber('BENCH_BOUND_MS', 2000, 200, 30_000),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  enforce: envFlag('BENCH_ENFORCE'),
  rows: (process.env['BENCH_ROWS'] ?? ALL_ROWS.join(','))
    .split(',')
    .map((row) => row.trim())
    .filter(Boolean)
    .map((row) => {
      if (!(ALL_ROWS as readonly string[]).includes(row)) throw new Error(`BENCH_ROWS: unknown row ${row} (rows: ${ALL_ROWS.join(', ')})`);
      return row as RowName;
    }),
};

/** Issue "Performance": throughput scales ≥ 1.7× on 2 cores. */
const TARGET_SCALING = 1.7;

// ---------------------------------------------------------------------------------------------
// Who used the cores (Linux /proc; NaN elsewhere).

interface Cores {
  /** Primary and workers together. */
  readonly gatehouse: number;
  /** Each Gatehouse process: the primary first. */
  readonly perProcess: readonly { readonly pid: number; readonly role: 'primary' | 'worker' | 'single'; readonly cores: number; readonly rssMiB: number }[];
  readonly postgres: number;
  /** This process: autocannon runs on its event loop. */
  readonly loadGenerator: number;
  readonly other: number;
  readonly machine: number;
  /** Taken by the host from this VM: invisible to every figure above, and not available to any of them. */
  readonly stolen: number;
}

/** The processes of one Gatehouse: the one launched, and its cluster workers (its children). */
function gatehousePids(sample: CpuSample, rootPid: number): number[] {
  return [rootPid, ...[...sample.processes].filter(([, proc]) => proc.ppid === rootPid).map(([pid]) => pid)];
}

function coresBetween(before: CpuSample, after: CpuSample, rootPid: number, databaseName: string, clustered: boolean): Cores {
  const seconds = (after.at - before.at) / 1000;
  const used = (pid: number) => ((after.processes.get(pid)?.seconds ?? 0) - (before.processes.get(pid)?.seconds ?? 0)) / seconds;
  if (after.processes.size === 0) {
    const nan = Number.NaN;
    return { gatehouse: nan, perProcess: [], postgres: nan, loadGenerator: nan, other: nan, machine: (after.machine - before.machine) / seconds, stolen: nan };
  }
  const perProcess = gatehousePids(after, rootPid).map((pid) => ({
    pid,
    role: pid === rootPid ? (clustered ? ('primary' as const) : ('single' as const)) : ('worker' as const),
    cores: used(pid),
    // Resident memory at the end of the window.
    rssMiB: readRss(pid)?.rssMiB ?? Number.NaN,
  }));
  const gatehouse = perProcess.reduce((sum, proc) => sum + proc.cores, 0);
  let postgres = 0;
  for (const [pid, proc] of after.processes) if (servesDatabase(proc, databaseName)) postgres += used(pid);
  const loadGenerator = used(process.pid);
  const machine = (after.machine - before.machine) / seconds;
  const stolen = (after.steal - before.steal) / seconds;
  return { gatehouse, perProcess, postgres, loadGenerator, other: Math.max(0, machine - gatehouse - postgres - loadGenerator), machine, stolen };
}

// ---------------------------------------------------------------------------------------------
// Every worker must be serving before a row is measured: /readyz answers as soon as one does.

/** Inodes of established TCP sockets whose local port is `port` (IPv4 and IPv6 tables). */
function socketInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (local === undefined || fields[3] !== '01') continue; // 01: ESTABLISHED
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && fields[9] !== undefined) inodes.add(fields[9]);
    }
  }
  return inodes;
}

function socketsHeldBy(pid: number, inodes: ReadonlySet<string>): number {
  let held = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match?.[1] !== undefined && inodes.has(match[1])) held += 1;
      } catch {
        // Closed meanwhile.
      }
    }
  } catch {
    // Gone.
  }
  return held;
}

/**
 * Opens two kept-alive connections per worker and looks (in /proc) at which processes hold them:
 * node:cluster hands new connections to the listening workers in turn, so once every worker holds
 * one, every worker is serving.
 */
async function everyWorkerServing(gatehouse: Gatehouse, workers: number): Promise<boolean> {
  const rootPid = gatehouse.child.process.pid!;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 * workers });
  try {
    await Promise.all(
      Array.from(
        { length: 2 * workers },
        () =>
          new Promise<void>((resolve, reject) => {
            http
              .get(`${gatehouse.url}/healthz`, { agent }, (response) => {
                response.resume();
                response.on('end', () => resolve());
              })
              .on('error', reject);
          }),
      ),
    );
    const port = Number(new URL(gatehouse.url).port);
    const inodes = socketInodes(port);
    const workerPids = gatehousePids(sampleCpu(), rootPid).slice(1);
    return workerPids.length === workers && workerPids.every((pid) => socketsHeldBy(pid, inodes) > 0);
  } finally {
    agent.destroy();
  }
}

async function waitForWorkers(gatehouse: Gatehouse, workers: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await everyWorkerServing(gatehouse, workers))) {
    if (Date.now() > deadline) throw new Error(`not all ${workers} workers were serving within 120 s:\n${gatehouse.child.output.stderr.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// ---------------------------------------------------------------------------------------------
// The machine's own bound: how much more CPU-bound work two processes get done than one.
// ES256 signing is a token's largest single cost; if the cores (vCPUs that may share a physical
// core, with other tenants) give two signers less than 2×, no cluster can do better.

const SIGNER = `
const { generateKeyPairSync, sign } = require('node:crypto');
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const data = Buffer.alloc(400, 7);
for (let i = 0; i < 300; i++) sign('sha256', data, privateKey);
const start = Number(process.env.START_AT), end = start + Number(process.env.DURATION_MS);
while (Date.now() < start);
let ops = 0;
const cpu = process.cpuUsage();
while (Date.now() < end) { for (let i = 0; i < 20; i++) sign('sha256', data, privateKey); ops += 20; }
const used = process.cpuUsage(cpu);
process.stdout.write(JSON.stringify({ ops, cpuSeconds: (used.user + used.system) / 1e6 }));
`;

interface MachineBound {
  /** ES256 signatures per second of one process alone, and of N processes together. */
  readonly alone: number;
  readonly together: number;
  readonly processes: number;
  readonly ratio: number;
  /** Whole-machine busy cores while the N ran (above N means other work ran too). */
  readonly machineCores: number;
  /** Cores the host took from this VM meanwhile. */
  readonly stolen: number;
  /** CPU time ÷ wall time of the signers themselves, alone and together: below 1 and N, something else had the cores. */
  readonly signerCoresAlone: number;
  readonly signerCoresTogether: number;
  /** Signatures per CPU-second together ÷ alone: below 1, a core does less when the other one is busy too. */
  readonly perCpuSecondRatio: number;
}

interface SignerRun {
  readonly opsPerSecond: number;
  readonly cores: number;
  readonly opsPerCpuSecond: number;
  readonly machineCores: number;
  readonly stolen: number;
}

async function signers(count: number, durationMs: number): Promise<SignerRun> {
  // A common start time, after every process has started and warmed up.
  const startAt = Date.now() + 1_500;
  const children = Array.from({ length: count }, (_, i) =>
    spawnChild(`signer ${i + 1}`, ['-e', SIGNER], { START_AT: String(startAt), DURATION_MS: String(durationMs) }),
  );
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
  const before = sampleCpu();
  const codes = await Promise.all(children.map((child) => child.exited));
  const after = sampleCpu();
  await Promise.all(children.map((child) => child.closed));
  if (codes.some((code) => code !== 0)) throw new Error(`a signer process failed: ${children.map((child) => child.output.stderr).join('\n')}`);
  const results = children.map((child) => JSON.parse(child.output.stdout) as { ops: number; cpuSeconds: number });
  const ops = results.reduce((sum, result) => sum + result.ops, 0);
  const cpuSeconds = results.reduce((sum, result) => sum + result.cpuSeconds, 0);
  const seconds = (after.at - before.at) / 1000;
  return {
    opsPerSecond: ops / (durationMs / 1000),
    cores: cpuSeconds / (durationMs / 1000),
    opsPerCpuSecond: ops / cpuSeconds,
    machineCores: (after.machine - before.machine) / seconds,
    stolen: (after.steal - before.steal) / seconds,
  };
}

async function machineBound(processes: number, durationMs: number): Promise<MachineBound> {
  const alone = await signers(1, durationMs);
  const together = await signers(processes, durationMs);
  return {
    alone: alone.opsPerSecond,
    together: together.opsPerSecond,
    processes,
    ratio: together.opsPerSecond / alone.opsPerSecond,
    machineCores: together.machineCores,
    stolen: together.stolen,
    signerCoresAlone: alone.cores,
    signerCoresTogether: together.cores,
    perCpuSecondRatio: together.opsPerCpuSecond / alone.opsPerCpuSecond,
  };
}

// ---------------------------------------------------------------------------------------------
// Set-up: two resource servers and a client for each, created once in the shared database.

interface Instance {
  readonly workers: number;
  readonly gatehouse: Gatehouse;
}

async function createTargets(gatehouse: Gatehouse): Promise<Record<RowName, { identifier: string; authorization: string }>> {
  const adminToken = await gatehouse.adminToken(['admin:clients', 'admin:resource-servers']);
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const innerJwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-inner', use: 'enc', alg: 'ECDH-ES+A256KW' };
  const targets = {} as Record<RowName, { identifier: string; authorization: string }>;
  for (const row of ALL_ROWS) {
    const identifier = `https://${row}.cluster.bench.invalid`;
    await adminPost(gatehouse.url, adminToken, '/resource-servers', {
      identifier,
      name: `bench cluster ${row}`,
      scopes: ['bench:read'],
      signing_alg: 'ES256',
      ...(row === 'inner' ? { inner_encryption_jwk: innerJwk } : {}),
    });
    const client = await adminPost<{ client_id: string; client_secret: string }>(gatehouse.url, adminToken, '/clients', {
      client_name: `bench cluster ${row}`,
      grant_types: ['client_credentials'],
      allowed_resources: [identifier],
    });
    targets[row] = { identifier, authorization: basic(client.client_id, client.client_secret) };
  }
  return targets;
}

/** Both instances issue what the rows claim: signed at+jwt for the audience, `inner` only on the inner row. */
async function checkTokens(instances: readonly Instance[], targets: Record<RowName, { identifier: string; authorization: string }>): Promise<void> {
  for (const { gatehouse } of instances) {
    const jwks = createRemoteJWKSet(new URL(`${gatehouse.url}/jwks`));
    for (const row of ALL_ROWS) {
      const token = await requestToken(gatehouse.url, targets[row].authorization, TOKEN_BODY);
      const { payload } = await jwtVerify(token, jwks, { issuer: gatehouse.url, audience: targets[row].identifier, typ: 'at+jwt', algorithms: ['ES256'] });
      if ((row === 'inner') !== (typeof payload['inner'] === 'string')) throw new Error(`${row} row: unexpected inner layer on ${gatehouse.url}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

interface Slice extends RunResult {
  readonly row: RowName;
  readonly workers: number;
  readonly slice: number;
  readonly cores: Cores;
}

interface Measured extends RunResult {
  readonly row: RowName;
  readonly workers: number;
  /** Over all of the side's slices, weighted by their durations. */
  readonly cores: Cores;
  /** Tokens/s of each slice, in order. */
  readonly sliceTokensPerSecond: readonly number[];
}

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  /** Each row and side, its slices added up. */
  readonly runs: readonly Measured[];
  readonly slices: readonly Slice[];
  readonly machineBound: MachineBound;
  readonly checks: Check[];
}

/** One side of a row: its slices' requests added up, cores weighted by duration, the median slice's latencies. */
function combine(parts: readonly Slice[]): Measured {
  const first = parts[0];
  if (first === undefined) throw new Error('no slices to combine');
  const seconds = parts.reduce((sum, part) => sum + part.durationSeconds, 0);
  const weighted = (pick: (cores: Cores) => number) => parts.reduce((sum, part) => sum + pick(part.cores) * part.durationSeconds, 0) / seconds;
  const perProcess = new Map<number, { pid: number; role: 'primary' | 'worker' | 'single'; cores: number; rssMiB: number }>();
  for (const part of parts) {
    for (const proc of part.cores.perProcess) {
      const entry = perProcess.get(proc.pid) ?? { pid: proc.pid, role: proc.role, cores: 0, rssMiB: proc.rssMiB };
      entry.cores += (proc.cores * part.durationSeconds) / seconds;
      entry.rssMiB = proc.rssMiB; // the latest
      perProcess.set(proc.pid, entry);
    }
  }
  const ok = parts.reduce((sum, part) => sum + part.tokensPerSecond * part.durationSeconds, 0);
  const middle = median(parts, (part) => part.tokensPerSecond);
  return {
    row: first.row,
    workers: first.workers,
    tokensPerSecond: ok / seconds,
    p50Ms: middle.p50Ms,
    p99Ms: middle.p99Ms,
    requests: parts.reduce((sum, part) => sum + part.requests, 0),
    non2xx: parts.reduce((sum, part) => sum + part.non2xx, 0),
    errors: parts.reduce((sum, part) => sum + part.errors, 0),
    timeouts: parts.reduce((sum, part) => sum + part.timeouts, 0),
    durationSeconds: seconds,
    loadAverage: Math.max(...parts.map((part) => part.loadAverage)),
    sliceTokensPerSecond: parts.map((part) => part.tokensPerSecond),
    cores: {
      gatehouse: weighted((cores) => cores.gatehouse),
      perProcess: [...perProcess.values()],
      postgres: weighted((cores) => cores.postgres),
      loadGenerator: weighted((cores) => cores.loadGenerator),
      other: weighted((cores) => cores.other),
      machine: weighted((cores) => cores.machine),
      stolen: weighted((cores) => cores.stolen),
    },
  };
}

function find(runs: readonly Measured[], row: RowName, workers: number): Measured | undefined {
  return runs.find((run) => run.row === row && run.workers === workers);
}

function buildChecks(runs: readonly Measured[], bound: MachineBound): Check[] {
  const checks: Check[] = [
    {
      name: `machine: ES256 signatures/s of ${bound.processes} processes ÷ 1 process`,
      value: bound.ratio,
      display: `${bound.ratio.toFixed(2)}×`,
      target: '—',
      met: undefined,
    },
    {
      name: `machine: ES256 signatures per CPU-second, ${bound.processes} processes ÷ 1`,
      value: bound.perCpuSecondRatio,
      display: `${bound.perCpuSecondRatio.toFixed(2)}×`,
      target: '—',
      met: undefined,
    },
  ];
  for (const row of settings.rows) {
    const one = find(runs, row, 1);
    const many = find(runs, row, settings.workers);
    if (one === undefined || many === undefined) continue;
    const ratio = many.tokensPerSecond / one.tokensPerSecond;
    checks.push({
      name: `${row}: tokens/s WORKERS=${settings.workers} ÷ WORKERS=1`,
      value: ratio,
      display: `${ratio.toFixed(2)}×`,
      target: `≥ ${TARGET_SCALING.toFixed(2)}×`,
      met: ratio >= TARGET_SCALING,
    });
    const coreRatio = many.cores.gatehouse / one.cores.gatehouse;
    checks.push({
      name: `${row}: Gatehouse cores used, WORKERS=${settings.workers} ÷ WORKERS=1`,
      value: coreRatio,
      display: `${coreRatio.toFixed(2)}× (${fmt(many.cores.gatehouse, 2)} ÷ ${fmt(one.cores.gatehouse, 2)})`,
      target: '—',
      met: undefined,
    });
    const perCore = many.tokensPerSecond / many.cores.gatehouse / (one.tokensPerSecond / one.cores.gatehouse);
    checks.push({
      name: `${row}: tokens per Gatehouse CPU-second, WORKERS=${settings.workers} ÷ WORKERS=1`,
      value: perCore,
      display: `${perCore.toFixed(2)}×`,
      target: '—',
      met: undefined,
    });
  }
  return checks;
}

function markdown(report: Report): string {
  const env = report.environment;
  const c = (value: number) => (Number.isFinite(value) ? fmt(value, 2) : 'n/a');
  const rss = (mib: number) => (Number.isFinite(mib) ? fmt(mib) : 'n/a');
  const lines = [
    `# Cluster scaling benchmark, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; one Gatehouse with WORKERS=1 and one with WORKERS=${env['workers']} on the same ` +
      `PostgreSQL database; autocannon (in the bench process) ${env['connections']} connections, POST /token (client_secret_basic, client_credentials), ` +
      `${env['seconds']} s per row and side after ${env['warmupSeconds']} s warm-up, in ${env['sliceSeconds']} s slices alternating between the sides ` +
      `(p50/p99: the median slice's); load average ${env['loadAverageAtStart']} at start; source ${env['source']}.`,
    '',
    '| row | WORKERS | tokens/s | p50 ms | p99 ms | non-2xx | Gatehouse cores | PostgreSQL cores | load generator cores | anything else | whole machine | stolen by the host | Gatehouse RSS MiB | load avg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...report.runs.map(
      (run) =>
        `| ${run.row} | ${run.workers} | ${fmt(run.tokensPerSecond)} | ${fmt(run.p50Ms, 1)} | ${fmt(run.p99Ms, 1)} | ${run.non2xx} | ${c(run.cores.gatehouse)} | ` +
        `${c(run.cores.postgres)} | ${c(run.cores.loadGenerator)} | ${c(run.cores.other)} | ${c(run.cores.machine)} | ${c(run.cores.stolen)} | ${rss(run.cores.perProcess.reduce((sum, proc) => sum + proc.rssMiB, 0))} | ${run.loadAverage.toFixed(1)} |`,
    ),
    '',
    'Gatehouse processes (primary, then workers): cores used, resident memory at the end of the row:',
    '',
    ...report.runs
      .filter((run) => run.workers > 1)
      .map((run) => `- ${run.row}, WORKERS=${run.workers}: ${run.cores.perProcess.map((proc) => `${proc.role} ${c(proc.cores)} cores, ${rss(proc.rssMiB)} MiB`).join('; ')}`),
    '',
    `Machine bound, measured first with nothing of this run started: ES256 signing (a token's largest single cost) in one process ` +
      `${fmt(report.machineBound.alone)}/s, in ${report.machineBound.processes} processes at once ${fmt(report.machineBound.together)}/s together ` +
      `(${report.machineBound.ratio.toFixed(2)}×). The signers got ${c(report.machineBound.signerCoresAlone)} core alone and ${c(report.machineBound.signerCoresTogether)} together ` +
      `(whole machine ${c(report.machineBound.machineCores)} busy, ${c(report.machineBound.stolen)} stolen by the host), and did ` +
      `${report.machineBound.perCpuSecondRatio.toFixed(2)}× the signatures per CPU-second together as alone (below 1.00: a core does less while the other is busy, ` +
      'e.g. two vCPUs sharing a physical core). No cluster can scale past the first ratio on this machine.',
    '',
    ...checksTable(report.checks),
    '',
    `Cores are CPU time ÷ wall time from /proc during each measured row (the machine has ${env['cpus']}). ` +
      'The load generator and PostgreSQL run on the same cores as Gatehouse, so with every core busy the workers get what those two leave: ' +
      'the tokens/s ratio cannot exceed the ratio of Gatehouse cores used, and "tokens per Gatehouse CPU-second" shows whether a worker ' +
      'does as much with a core as the single process does (near 1.00× means the cluster itself costs nothing; the shortfall is cores). ' +
      '"anything else" well above 0 means other work shared the machine, and "stolen by the host" that the hypervisor ran other guests ' +
      'on these vCPUs (time no process here saw); either way, repeat the run.',
    '',
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const stamp = fileStamp(started);
  await mkdir(RESULTS_DIR, { recursive: true });

  let database: BenchDatabase | undefined;
  const instances: Instance[] = [];
  const cleanup = async () => {
    await Promise.allSettled(instances.map((instance) => instance.gatehouse.child.stop()));
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    await Promise.allSettled(instances.map((instance) => rm(instance.gatehouse.dataDir, { recursive: true, force: true })));
  };
  onAbort(cleanup);

  try {
    log(`machine bound: ES256 signing in 1 process, then in ${settings.workers} at once, ${settings.boundMs} ms each`);
    const bound = await machineBound(settings.workers, settings.boundMs);
    log(`machine bound: ${bound.alone.toFixed(0)} signatures/s alone, ${bound.together.toFixed(0)}/s in ${bound.processes} processes (${bound.ratio.toFixed(2)}×)`);
    database = await createBenchDatabase(settings.databaseUrl);
    if (database.kind !== 'postgres' || database.url === undefined) throw new Error(`WORKERS > 1 needs PostgreSQL, and ${settings.databaseUrl} is unreachable`);
    const databaseName = new URL(database.url).pathname.slice(1);

    // One database, so one master key for both. One after the other: each launch ensures its
    // own bootstrap admin, so the first sets the database up before the second replaces that
    // admin's secret.
    const masterKey = randomBytes(32).toString('base64url');
    log('starting Gatehouse with WORKERS=1');
    const single: Instance = { workers: 1, gatehouse: await launchGatehouse(database, { env: { WORKERS: '1', MASTER_KEY: masterKey } }) };
    instances.push(single);
    const targets = await createTargets(single.gatehouse);
    log(`starting Gatehouse with WORKERS=${settings.workers}`);
    const clustered: Instance = { workers: settings.workers, gatehouse: await launchGatehouse(database, { env: { WORKERS: String(settings.workers), MASTER_KEY: masterKey } }) };
    instances.push(clustered);
    await waitForWorkers(clustered.gatehouse, settings.workers);
    log(`every one of the ${settings.workers} workers is serving`);
    await checkTokens(instances, targets);
    log('tokens checked on both instances: signatures, typ, audience, inner layer');

    const slices: Slice[] = [];
    const sliceCount = Math.max(1, Math.round(settings.seconds / settings.sliceSeconds));
    for (const row of settings.rows) {
      const sides = instances.map((instance) => ({
        instance,
        target: { row: `${row} (WORKERS=${instance.workers})`, url: instance.gatehouse.url, authorization: targets[row].authorization } satisfies TokenTarget,
      }));
      for (const { target } of sides) {
        if (settings.warmupSeconds > 0) await failOnBadResponses(target, await drive(target, settings.warmupSeconds, { connections: settings.connections }));
      }
      for (let slice = 1; slice <= sliceCount; slice += 1) {
        // ABBA order: neither side always goes first.
        for (const { instance, target } of slice % 2 === 1 ? sides : [...sides].reverse()) {
          const rootPid = instance.gatehouse.child.process.pid!;
          const before = sampleCpu();
          const run = await drive(target, settings.sliceSeconds, { connections: settings.connections });
          const after = sampleCpu();
          await failOnBadResponses(target, run);
          slices.push({ ...run, row, workers: instance.workers, slice, cores: coresBetween(before, after, rootPid, databaseName, instance.workers > 1) });
        }
      }
      for (const { instance, target } of sides) {
        const measured = combine(slices.filter((run) => run.row === row && run.workers === instance.workers));
        const { cores } = measured;
        log(
          `${target.row}: ${measured.tokensPerSecond.toFixed(0)} tokens/s (slices ${measured.sliceTokensPerSecond.map((value) => value.toFixed(0)).join(', ')}); ` +
            `cores: Gatehouse ${cores.gatehouse.toFixed(2)}, PostgreSQL ${cores.postgres.toFixed(2)}, load generator ${cores.loadGenerator.toFixed(2)}, ` +
            `other ${cores.other.toFixed(2)}, stolen by the host ${cores.stolen.toFixed(2)}`,
        );
      }
    }
    const runs = settings.rows.flatMap((row) => instances.map((instance) => combine(slices.filter((run) => run.row === row && run.workers === instance.workers))));

    const checks = buildChecks(runs, bound);
    const report: Report = {
      date: started.toISOString(),
      environment: {
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        database: database.kind,
        workers: settings.workers,
        connections: settings.connections,
        seconds: settings.seconds,
        sliceSeconds: settings.sliceSeconds,
        warmupSeconds: settings.warmupSeconds,
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
        source: sourceVersion(),
      },
      runs,
      slices,
      machineBound: bound,
      checks,
    };
    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `cluster-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `cluster-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/cluster-${stamp}.md and .json`);
    await writeBenchOutput({ title: `Using all cores: WORKERS=${settings.workers} vs WORKERS=1`, markdown: text, checks, data: report });
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

// Start-ups (up to 2 minutes each when the machine is slow), every row's warm-up and measurement, slack.
const budgetMs = (settings.rows.length * 2 * (2 * settings.seconds + settings.warmupSeconds + 5) + 300) * 1000;
await runBench(budgetMs, main);
