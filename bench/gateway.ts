import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import {
  adminPost,
  basic,
  checksTable,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  drive,
  envFlag,
  envNumber,
  fileStamp,
  fmt,
  freePort,
  launchGatehouse,
  log,
  onAbort,
  requestToken,
  RESULTS_DIR,
  ROOT,
  runBench,
  sourceVersion,
  spawnChild,
  statCpuSeconds,
  waitUntil,
  TOKEN_BODY,
  writeBenchOutput,
  writeProfileSummary,
  type BenchDatabase,
  type Check,
  type Child,
  type Gatehouse,
} from './support.js';

/**
 * `npm run bench:gateway` (issue 15): the gateway decision as the fleet pays for it. Debian's nginx
 * runs the shipped deploy/gateway/nginx-gatehouse.conf (auth_request to Gatehouse) in front of a
 * static upstream (an nginx `return 200`), and autocannon drives it with 64 connections:
 *
 * - nginx → upstream alone (the baseline: what the gateway costs without Gatehouse);
 * - nginx → Gatehouse → upstream with tokens seen before (a small set, as clients reuse tokens);
 * - the same with fresh tokens (each used once: a signature check per request);
 * - the same two at a fixed 1,000 requests/s (8 connections), for the p99 the check adds;
 * - Gatehouse's own POST /token rate, in the same run;
 * - nginx → a bare node:http + jose verifier → upstream, token seen before (bench/bare-verifier.ts):
 *   the baseline of the performance issue, which wants Gatehouse's decision at ≥ 0.7× its rate.
 *
 * Gatehouse's CPU per decision comes from /proc (its process's utime + stime over the row,
 * divided by the decisions). Targets (issue 15): ≤ 100 µs of Gatehouse CPU per decision for a
 * token seen before (≥ 10,000 decisions/s per process), fresh tokens ≥ 3,000/s, p99 added ≤ 5 ms
 * at 1,000 requests/s. With BENCH_PROFILE=1 Gatehouse runs under --cpu-prof and the profile of
 * the seen-before row is summarised next to the results.
 *
 * Environment (all optional):
 *   BENCH_GATEWAY_SECONDS=5         measured seconds per row
 *   BENCH_GATEWAY_FRESH_TOKENS=20000 distinct tokens minted for the fresh row
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
 *   BENCH_PROFILE=1                 profile Gatehouse during the seen-before row
 *   BENCH_ENFORCE=1                 exit 1 when a target is not met
 */

const settings = {
  seconds: envNumber('BENCH_GATEWAY_SECONDS', 5, 1, 120),
  freshTokens: envNumber('BENCH_GATEWAY_FRESH_TOKENS', 20_000, 1_000, 200_000),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  profile: envFlag('BENCH_PROFILE'),
  enforce: envFlag('BENCH_ENFORCE'),
};

const CONNECTIONS = 64;
/**
 * For the fixed-rate rows. autocannon paces each connection on its own timer, so 64 connections
 * at 1,000/s arrive as bursts of up to 64 requests at once: the p99 then measures how long 64
 * decisions queue behind each other, not what one check adds to a steady stream.
 */
const FIXED_RATE_CONNECTIONS = 8;
const SEEN_TOKENS = 16;
const FIXED_RATE = 1_000;
const RESOURCE = 'https://gateway.bench.invalid';
const TARGET_CPU_MICROS = 100;
const TARGET_FRESH_PER_SECOND = 3_000;
const TARGET_ADDED_P99_MS = 5;
/** Issue "Performance": the door costs at most 1/0.7 of a bare jose verifier's CPU per decision. */
const TARGET_OVER_BARE = 0.7;

interface Row {
  readonly name: string;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly non2xx: number;
  /** Gatehouse CPU per request, µs (undefined for rows Gatehouse is not in). */
  readonly gatehouseMicros: number | undefined;
  readonly loadAverage: number;
}

interface Nginx {
  readonly gatewayPort: number;
  readonly baselinePort: number;
  /** The same auth_request shape, to the bare jose verifier instead of Gatehouse. */
  readonly barePort: number;
  stop(): Promise<void>;
}

async function startBareVerifier(gatehouse: Gatehouse): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnChild('bare jose verifier', ['--import', './bench/exit-with-parent.ts', 'bench/bare-verifier.ts'], {
    PORT: String(port),
    BARE_ISSUER: gatehouse.url,
    BARE_AUDIENCE: RESOURCE,
  });
  await waitUntil('ready', child, () => Promise.resolve(child.output.stdout.includes('ready ')), 30_000);
  return { child, port };
}

/** A private nginx: the shipped gateway block, a baseline block (proxy only) and the static upstream. */
async function startNginx(gatehouse: Gatehouse, bareVerifierPort: number): Promise<Nginx> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-bench-nginx-'));
  const [gatewayPort, baselinePort, upstreamPort, barePort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const shipped = await readFile(path.join(ROOT, 'deploy/gateway/nginx-gatehouse.conf'), 'utf8');
  await writeFile(path.join(dir, 'gatehouse.conf'), shipped.replace('listen 8080;', `listen 127.0.0.1:${gatewayPort};`));
  await writeFile(
    path.join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
      // Keep-alive to both upstreams, as a production gateway would.
      `  upstream gatehouse { server ${new URL(gatehouse.url).host}; keepalive 64; }`,
      `  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }`,
      `  include ${dir}/gatehouse.conf;`,
      `  server { listen 127.0.0.1:${baselinePort}; location / { proxy_set_header Host $http_host; proxy_pass http://app; } }`,
      `  server { listen 127.0.0.1:${upstreamPort}; location / { return 200 "ok\\n"; } }`,
      // The bare verifier behind the same auth_request shape as the shipped block (keep-alive, no body).
      `  upstream bareverifier { server 127.0.0.1:${bareVerifierPort}; keepalive 64; }`,
      `  server { listen 127.0.0.1:${barePort};`,
      '    location = /_verify { internal; proxy_pass http://bareverifier; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass_request_body off; proxy_set_header Content-Length ""; }',
      '    location / { auth_request /_verify; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $http_host; proxy_pass http://app; } }',
      '}',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGQUIT');
      await once(child, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  };
  onAbort(stop);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${baselinePort}/`).then((r) => r.status === 200, () => false);
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { gatewayPort, baselinePort, barePort, stop };
}

/** autocannon GETs on `port` for `seconds`; `authorization` gives each request's token. */
async function load(
  name: string,
  port: number,
  seconds: number,
  authorization: (() => string) | undefined,
  gatehousePid: number | undefined,
  overallRate?: number,
): Promise<Row> {
  const statFile = gatehousePid === undefined ? undefined : `/proc/${gatehousePid}/stat`;
  const cpuBefore = statFile === undefined ? undefined : statCpuSeconds(statFile);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/things/1`,
    connections: overallRate === undefined ? CONNECTIONS : FIXED_RATE_CONNECTIONS,
    duration: seconds,
    timeout: 10,
    ...(overallRate === undefined ? {} : { overallRate }),
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => ({ ...request, headers: { ...request.headers, ...(authorization === undefined ? {} : { authorization: `Bearer ${authorization()}` }) } }),
      },
    ],
  });
  const cpuAfter = statFile === undefined ? undefined : statCpuSeconds(statFile);
  const ok = result['2xx'];
  return {
    name,
    perSecond: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: ok + result.non2xx,
    non2xx: result.non2xx + result.errors + result.timeouts,
    gatehouseMicros: cpuBefore === undefined || cpuAfter === undefined || ok === 0 ? undefined : ((cpuAfter - cpuBefore) * 1e6) / ok,
    loadAverage: loadavg()[0] ?? 0,
  };
}

async function main(): Promise<number> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const stamp = fileStamp(new Date());
  const database: BenchDatabase = await createBenchDatabase(settings.databaseUrl);
  onAbort(() => database.drop());
  const profileFile = settings.profile ? path.join(RESULTS_DIR, `gateway-${stamp}.cpuprofile`) : undefined;
  const gatehouse = await launchGatehouse(database, { profileFile });
  onAbort(() => gatehouse.child.stop());
  const bareVerifier = await startBareVerifier(gatehouse);
  onAbort(() => bareVerifier.child.stop());
  const nginx = await startNginx(gatehouse, bareVerifier.port);
  try {
    const admin = await gatehouse.adminToken(['admin:clients', 'admin:resource-servers', 'admin:gateway']);
    await adminPost(gatehouse.url, admin, '/resource-servers', { identifier: RESOURCE, name: 'Gateway bench', scopes: ['bench:read'] });
    const client = await adminPost<{ client_id: string; client_secret: string }>(gatehouse.url, admin, '/clients', { client_name: 'Gateway bench', grant_types: ['client_credentials'], allowed_resources: [RESOURCE] });
    await adminPost(gatehouse.url, admin, '/gateway-routes', { host: `127.0.0.1:${nginx.gatewayPort}`, path_prefix: '/things', resource_server: RESOURCE, required_scopes: ['bench:read'] });
    const authorization = basic(client.client_id, client.client_secret);
    const mint = () => requestToken(gatehouse.url, authorization, TOKEN_BODY);

    log(`minting ${SEEN_TOKENS} seen-before and ${settings.freshTokens} fresh tokens`);
    const seen = await Promise.all(Array.from({ length: SEEN_TOKENS }, mint));
    const fresh: string[] = [];
    while (fresh.length < settings.freshTokens) fresh.push(...(await Promise.all(Array.from({ length: Math.min(64, settings.freshTokens - fresh.length) }, mint))));
    let seenIndex = 0;
    const nextSeen = () => seen[seenIndex++ % seen.length]!;
    let freshIndex = 0;
    const nextFresh = () => fresh[freshIndex++] ?? fresh[fresh.length - 1]!;

    const pid = gatehouse.child.process.pid;
    // Warm-up: JIT, keep-alive connections, the verifier's and the route table's caches.
    await load('warm-up', nginx.gatewayPort, 2, nextSeen, pid);
    await load('warm-up', nginx.baselinePort, 1, undefined, undefined);

    const rows: Row[] = [];
    rows.push(await load('nginx → upstream (baseline)', nginx.baselinePort, settings.seconds, undefined, undefined));
    const profileStart = Number(process.hrtime.bigint() / 1000n);
    rows.push(await load('nginx → Gatehouse → upstream, token seen before', nginx.gatewayPort, settings.seconds, nextSeen, pid));
    const profileEnd = Number(process.hrtime.bigint() / 1000n);
    // Fresh tokens: as many seconds as the minted tokens last at the target rate, at most the row's.
    const freshSeconds = Math.max(1, Math.min(settings.seconds, Math.floor(settings.freshTokens / (TARGET_FRESH_PER_SECOND * 1.5))));
    rows.push(await load('nginx → Gatehouse → upstream, fresh tokens', nginx.gatewayPort, freshSeconds, nextFresh, pid));
    const freshRow = rows.at(-1)!;
    if (freshIndex > fresh.length) log(`the fresh row ran out of tokens (${freshIndex} asked, ${fresh.length} minted): the last ones were seen before`);
    rows.push(await load(`baseline at ${fmt(FIXED_RATE)}/s`, nginx.baselinePort, settings.seconds, undefined, undefined, FIXED_RATE));
    const baselineFixed = rows.at(-1)!;
    rows.push(await load(`gateway at ${fmt(FIXED_RATE)}/s, token seen before`, nginx.gatewayPort, settings.seconds, nextSeen, pid, FIXED_RATE));
    const gatewayFixed = rows.at(-1)!;
    const tokenRun = await drive({ row: 'POST /token', url: gatehouse.url, authorization }, settings.seconds, { connections: CONNECTIONS });
    const seenRow = rows[1]!;
    await load('warm-up', nginx.barePort, 2, nextSeen, bareVerifier.child.process.pid);
    rows.push(await load('nginx → bare jose verifier → upstream, token seen before', nginx.barePort, settings.seconds, nextSeen, bareVerifier.child.process.pid));
    const bareRow = rows.at(-1)!;
    const overBare = bareRow.gatehouseMicros === undefined || seenRow.gatehouseMicros === undefined ? Number.NaN : bareRow.gatehouseMicros / seenRow.gatehouseMicros;

    const addedP99 = gatewayFixed.p99Ms - baselineFixed.p99Ms;
    const checks: Check[] = [
      {
        name: 'Gatehouse CPU per decision, token seen before',
        value: seenRow.gatehouseMicros ?? Number.NaN,
        display: `${fmt(seenRow.gatehouseMicros ?? Number.NaN, 1)} µs (${fmt(1e6 / (seenRow.gatehouseMicros ?? Number.NaN))}/s per core)`,
        target: `≤ ${TARGET_CPU_MICROS} µs`,
        met: seenRow.gatehouseMicros === undefined ? undefined : seenRow.gatehouseMicros <= TARGET_CPU_MICROS,
      },
      { name: 'fresh tokens', value: freshRow.perSecond, display: `${fmt(freshRow.perSecond)}/s`, target: `≥ ${fmt(TARGET_FRESH_PER_SECOND)}/s`, met: freshRow.perSecond >= TARGET_FRESH_PER_SECOND },
      { name: `p99 added at ${fmt(FIXED_RATE)}/s`, value: addedP99, display: `${fmt(addedP99, 2)} ms`, target: `≤ ${TARGET_ADDED_P99_MS} ms`, met: addedP99 <= TARGET_ADDED_P99_MS },
      {
        name: 'decision rate per core, Gatehouse ÷ bare jose verifier (token seen before; CPU per decision, bare ÷ Gatehouse)',
        value: overBare,
        display: `${fmt(overBare, 2)}× (${fmt(seenRow.gatehouseMicros ?? Number.NaN, 1)} vs ${fmt(bareRow.gatehouseMicros ?? Number.NaN, 1)} µs)`,
        target: `≥ ${TARGET_OVER_BARE}×`,
        met: Number.isNaN(overBare) ? undefined : overBare >= TARGET_OVER_BARE,
      },
    ];
    const bad = rows.filter((row) => row.non2xx > 0 && row.name !== 'warm-up');

    const markdown = [
      `# Gateway decisions (${stamp})`,
      '',
      `Source ${sourceVersion()}; ${database.kind}; ${CONNECTIONS} connections (${FIXED_RATE_CONNECTIONS} for the fixed-rate rows); ${settings.seconds} s per row; nginx 1 worker; Gatehouse 1 process.`,
      '',
      '| row | requests/s | p50 ms | p99 ms | deciding process CPU per request (Gatehouse; the bare verifier in its row) | failed | load avg |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...rows.map((row) => `| ${row.name} | ${fmt(row.perSecond)} | ${fmt(row.p50Ms, 2)} | ${fmt(row.p99Ms, 2)} | ${row.gatehouseMicros === undefined ? '' : `${fmt(row.gatehouseMicros, 1)} µs`} | ${row.non2xx} | ${fmt(row.loadAverage, 2)} |`),
      `| Gatehouse POST /token (same run) | ${fmt(tokenRun.tokensPerSecond)} | ${fmt(tokenRun.p50Ms, 2)} | ${fmt(tokenRun.p99Ms, 2)} | | ${tokenRun.non2xx + tokenRun.errors} | ${fmt(tokenRun.loadAverage, 2)} |`,
      '',
      ...checksTable(checks),
      '',
      'nginx, Gatehouse, the load generator and PostgreSQL share the two cores: the requests/s of the',
      'gateway rows are bounded by the machine, the CPU per decision is what Gatehouse itself spends.',
    ].join('\n');
    process.stdout.write(`\n${markdown}\n`);
    await writeFile(path.join(RESULTS_DIR, `gateway-${stamp}.md`), markdown + '\n');
    await writeFile(path.join(RESULTS_DIR, `gateway-${stamp}.json`), JSON.stringify({ stamp, settings, rows, tokenRun, checks }, null, 2) + '\n');
    await writeBenchOutput({ title: 'Gateway decisions', markdown, checks, data: { rows, tokenRun } });
    if (profileFile !== undefined) await writeProfileSummary(gatehouse, 'Gatehouse during the seen-before gateway row', path.join(RESULTS_DIR, `gateway-${stamp}-profile.md`), { startMicros: profileStart, endMicros: profileEnd });
    if (bad.length > 0) {
      log(`rows with failed requests: ${bad.map((row) => `${row.name} (${row.non2xx})`).join(', ')}`);
      return 1;
    }
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } finally {
    await nginx.stop();
    await gatehouse.child.stop();
    await bareVerifier.child.stop();
    await database.drop();
  }
}

await runBench(15 * 60_000, main);
