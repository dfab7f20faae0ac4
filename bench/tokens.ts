import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { importRecipient } from '../src/tokens/jwe.js';
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
  freePort,
  launchGatehouse,
  log,
  median,
  onAbort,
  pct,
  requestToken,
  rssCheck,
  rssLine,
  RESULTS_DIR,
  ROOT,
  runBench,
  sampleRss,
  sourceVersion,
  spawnChild,
  TOKEN_BODY,
  waitUntil,
  writeBenchOutput,
  writeProfileSummary,
  type BenchDatabase,
  type Check,
  type Child,
  type Gatehouse,
  type RssReport,
  type RunResult,
  type TokenTarget,
} from './support.js';

/**
 * `npm run bench:tokens`: client-credentials throughput of the token endpoint (issue "Benchmark").
 *
 * Rows: Gatehouse (one process, PostgreSQL) issuing plain JWTs, JWTs with the inner JWE layer,
 * and nested (whole-token encrypted) JWTs; a bare oidc-provider issuing plain ES256 JWTs
 * (bench/bare-provider.ts); and the single-core crypto bound measured in this process.
 * Every server is a child process on 127.0.0.1; every child and the whole run are time-bounded.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=10          measured seconds per row
 *   BENCH_WARMUP_SECONDS=3    warm-up seconds per row (first round only)
 *   BENCH_CONNECTIONS=16      autocannon connections
 *   BENCH_ROUNDS=1            repeat the rows; the median round per row is reported
 *   BENCH_ROWS=plain,inner,nested,bare   a subset of rows
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (PGlite when unreachable)
 *   BENCH_CPU_PROF=1          run Gatehouse under --cpu-prof and summarise its top frames
 *   BENCH_CRYPTO_MS=2000      time per crypto-bound measurement
 *   BENCH_ENFORCE=1           exit 1 when a target is not met
 */

type RowName = 'plain' | 'inner' | 'nested' | 'bare';
const ALL_ROWS: readonly RowName[] = ['plain', 'inner', 'nested', 'bare'];

const settings = {
  seconds: envNumber('BENCH_SECONDS', 10, 1, 300),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 3, 0, 60),
  connections: envNumber('BENCH_CONNECTIONS', 16, 1, 256),
  rounds: envNumber('BENCH_ROUNDS', 1, 1, 10),
  cryptoMs: envNumber('BENCH_CRYPTO_MS', 2000, 100, 30_000),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  cpuProf: envFlag('BENCH_CPU_PROF'),
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

const TARGETS = { innerOverBare: 0.8, innerTokensPerSecond: 1200, innerCostOverPlain: 0.25, nestedCostOverPlain: 0.5, innerOverCryptoBound: 0.5 } as const;

// ---------------------------------------------------------------------------------------------
// Servers under test.

interface Target extends TokenTarget {
  readonly row: RowName;
  readonly label: string;
}

interface GatehouseSetup {
  readonly gatehouse: Gatehouse;
  readonly url: string;
  readonly targets: Record<'plain' | 'inner' | 'nested', Target>;
  readonly innerKey: KeyObject;
}

async function startGatehouse(database: BenchDatabase, stamp: string): Promise<GatehouseSetup> {
  const profileFile = settings.cpuProf ? path.join(RESULTS_DIR, `gatehouse-${stamp}.cpuprofile`) : undefined;
  const gatehouse = await launchGatehouse(database, { profileFile });
  const { url } = gatehouse;

  const adminToken = await gatehouse.adminToken(['admin:clients', 'admin:resource-servers']);
  const { privateKey: innerKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const innerJwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-inner', use: 'enc', alg: 'ECDH-ES+A256KW' };

  const definitions = {
    plain: { label: 'Gatehouse: ES256 JWT', extra: {} },
    inner: { label: 'Gatehouse: ES256 JWT + inner JWE (ECDH-ES+A256KW, P-256)', extra: { inner_encryption_jwk: innerJwk } },
    nested: { label: 'Gatehouse: inner JWE + whole-token JWE (cty JWT)', extra: { inner_encryption_jwk: innerJwk, encrypt_whole_token: true } },
  } as const;
  const targets = {} as Record<'plain' | 'inner' | 'nested', Target>;
  for (const row of ['plain', 'inner', 'nested'] as const) {
    const identifier = `https://${row}.bench.invalid`;
    await adminPost(url, adminToken, '/resource-servers', {
      identifier,
      name: `bench ${row}`,
      scopes: ['bench:read'],
      signing_alg: 'ES256',
      ...definitions[row].extra,
    });
    const client = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
      client_name: `bench ${row}`,
      grant_types: ['client_credentials'],
      allowed_resources: [identifier],
    });
    targets[row] = { row, label: definitions[row].label, url, authorization: basic(client.client_id, client.client_secret) };
  }
  return { gatehouse, url, targets, innerKey };
}

interface BareSetup {
  readonly child: Child;
  readonly target: Target;
}

async function startBare(): Promise<BareSetup> {
  const port = await freePort();
  const client = { id: 'bench-bare', secret: randomBytes(32).toString('base64url') };
  const child = spawnChild('bare oidc-provider', ['--import', './bench/exit-with-parent.ts', 'bench/bare-provider.ts'], {
    PORT: String(port),
    BARE_CLIENT_ID: client.id,
    BARE_CLIENT_SECRET: client.secret,
    BARE_RESOURCE: 'https://bare.bench.invalid',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil('ready', child, () => Promise.resolve(child.output.stdout.includes('ready ')), 60_000);
  const version = (JSON.parse(await readFile(path.join(ROOT, 'node_modules/oidc-provider/package.json'), 'utf8')) as { version: string }).version;
  return { child, target: { row: 'bare', label: `bare oidc-provider ${version}: ES256 JWT, in-memory`, url, authorization: basic(client.id, client.secret) } };
}

/** Proves each row issues what it claims before timing it (signature, typ, the JWE layers). */
async function checkTokens(gatehouse: GatehouseSetup | undefined, bare: BareSetup | undefined): Promise<void> {
  const decoder = new TextDecoder();
  if (gatehouse !== undefined) {
    const jwks = createRemoteJWKSet(new URL(`${gatehouse.url}/jwks`));
    const verify = async (jws: string, audience: string) => {
      const { payload, protectedHeader } = await jwtVerify(jws, jwks, { issuer: gatehouse.url, audience, typ: 'at+jwt', algorithms: ['ES256'] });
      return { payload, protectedHeader };
    };
    const plain = await verify(await requestToken(gatehouse.url, gatehouse.targets.plain.authorization, TOKEN_BODY), 'https://plain.bench.invalid');
    if (plain.payload['inner'] !== undefined) throw new Error('plain row: token unexpectedly has an inner layer');

    const inner = await verify(await requestToken(gatehouse.url, gatehouse.targets.inner.authorization, TOKEN_BODY), 'https://inner.bench.invalid');
    const innerJwe = inner.payload['inner'];
    if (typeof innerJwe !== 'string') throw new Error('inner row: token has no inner layer');
    const opened = JSON.parse(decoder.decode((await compactDecrypt(innerJwe, gatehouse.innerKey)).plaintext)) as { jti?: unknown };
    if (opened.jti !== inner.payload.jti) throw new Error('inner row: inner.jti differs from the outer jti');

    const nested = await requestToken(gatehouse.url, gatehouse.targets.nested.authorization, TOKEN_BODY);
    if (decodeProtectedHeader(nested).cty !== 'JWT') throw new Error('nested row: token is not a nested JWT (cty JWT)');
    const outer = await verify(decoder.decode((await compactDecrypt(nested, gatehouse.innerKey)).plaintext), 'https://nested.bench.invalid');
    if (typeof outer.payload['inner'] !== 'string') throw new Error('nested row: signed token has no inner layer');
  }
  if (bare !== undefined) {
    const jwks = createRemoteJWKSet(new URL(`${bare.target.url}/jwks`));
    const token = await requestToken(bare.target.url, bare.target.authorization, TOKEN_BODY);
    await jwtVerify(token, jwks, { audience: 'https://bare.bench.invalid', typ: 'at+jwt', algorithms: ['ES256'] });
  }
}

// ---------------------------------------------------------------------------------------------
// The single-core crypto bound, in this process: ES256 sign (node:crypto) and the inner JWE
// (src/tokens/jwe.ts), on payloads the size of real tokens.

interface CryptoBound {
  readonly signMicros: number;
  readonly signEncryptMicros: number;
  readonly nestedMicros: number;
  readonly plainTokensPerSecond: number;
  readonly innerTokensPerSecond: number;
  readonly nestedTokensPerSecond: number;
}

function microsPerOp(operation: () => unknown, minMs: number): number {
  for (let i = 0; i < 300; i++) operation();
  const limit = BigInt(Math.round(minMs * 1e6));
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed: bigint;
  do {
    for (let i = 0; i < 50; i++) operation();
    ops += 50;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return Number(elapsed) / 1e3 / ops;
}

function measureCryptoBound(): CryptoBound {
  const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const { privateKey: signingKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const recipient = importRecipient({ ...publicKey.export({ format: 'jwk' }), kid: 'bench-inner', use: 'enc' });
  const now = Math.floor(Date.now() / 1000);
  const jti = randomBytes(32).toString('base64url');
  const clientId = randomBytes(16).toString('base64url');
  const header = b64u({ alg: 'ES256', typ: 'at+jwt', kid: 'bench-es256' });
  const claims = { iss: 'http://127.0.0.1:3000', sub: clientId, aud: 'https://inner.bench.invalid', exp: now + 900, iat: now, jti, client_id: clientId, scope: 'bench:read' };
  const es256 = (input: string) => `${input}.${sign('sha256', Buffer.from(input), { key: signingKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  const innerToken = () => {
    const inner = recipient.encrypt(JSON.stringify({ jti, client_id: clientId, client_name: 'bench inner' }));
    return es256(`${header}.${b64u({ ...claims, inner })}`);
  };
  const plainInput = `${header}.${b64u(claims)}`;

  const signMicros = microsPerOp(() => es256(plainInput), settings.cryptoMs);
  const signEncryptMicros = microsPerOp(innerToken, settings.cryptoMs);
  const nestedMicros = microsPerOp(() => recipient.encrypt(innerToken(), { cty: 'JWT' }), settings.cryptoMs);
  return {
    signMicros,
    signEncryptMicros,
    nestedMicros,
    plainTokensPerSecond: 1e6 / signMicros,
    innerTokensPerSecond: 1e6 / signEncryptMicros,
    nestedTokensPerSecond: 1e6 / nestedMicros,
  };
}

// ---------------------------------------------------------------------------------------------
// Report.

function buildChecks(rows: Partial<Record<RowName, RunResult>>, bound: CryptoBound): Check[] {
  const { plain, inner, nested, bare } = rows;
  const checks: Check[] = [];
  if (inner !== undefined && bare !== undefined) {
    const value = inner.tokensPerSecond / bare.tokensPerSecond;
    checks.push({ name: 'inner / bare', value, display: `${value.toFixed(2)}×`, target: `≥ ${TARGETS.innerOverBare.toFixed(2)}×`, met: value >= TARGETS.innerOverBare });
  }
  if (inner !== undefined) {
    const value = inner.tokensPerSecond;
    checks.push({ name: 'inner tokens/s', value, display: fmt(value), target: `≥ ${fmt(TARGETS.innerTokensPerSecond)}`, met: value >= TARGETS.innerTokensPerSecond });
  }
  if (inner !== undefined && plain !== undefined) {
    const value = 1 - inner.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'inner cost over plain (1 − inner/plain)', value, display: pct(value), target: `≤ ${pct(TARGETS.innerCostOverPlain)}`, met: value <= TARGETS.innerCostOverPlain });
  }
  if (nested !== undefined && plain !== undefined) {
    const value = 1 - nested.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'nested cost over plain (1 − nested/plain)', value, display: pct(value), target: `≤ ${pct(TARGETS.nestedCostOverPlain)}`, met: value <= TARGETS.nestedCostOverPlain });
  }
  if (plain !== undefined && bare !== undefined) {
    const value = plain.tokensPerSecond / bare.tokensPerSecond;
    checks.push({ name: 'plain / bare', value, display: `${value.toFixed(2)}×`, target: '—', met: undefined });
  }
  if (inner !== undefined) {
    const value = inner.tokensPerSecond / bound.innerTokensPerSecond;
    checks.push({
      name: 'inner / crypto bound (sign + inner JWE, one core)',
      value,
      display: `${value.toFixed(2)}×`,
      target: `≥ ${TARGETS.innerOverCryptoBound.toFixed(2)}×`,
      met: value >= TARGETS.innerOverCryptoBound,
    });
  }
  if (plain !== undefined) {
    const value = plain.tokensPerSecond / bound.plainTokensPerSecond;
    checks.push({ name: 'plain / crypto bound (sign, one core)', value, display: `${value.toFixed(2)}×`, target: '—', met: undefined });
  }
  return checks;
}

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly rows: Partial<Record<RowName, RunResult & { label: string; rounds: RunResult[] }>>;
  readonly cryptoBound: CryptoBound;
  /** Gatehouse's memory over its rows (undefined: no Gatehouse row, or /proc not readable). */
  readonly memory: RssReport | undefined;
  readonly checks: Check[];
}

function markdown(report: Report): string {
  const env = report.environment;
  const lines = [
    `# Token endpoint benchmark, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; Gatehouse on ${env['database']}, one process; ` +
      `autocannon ${env['connections']} connections, POST /token (client_secret_basic, client_credentials), ` +
      `${env['seconds']} s per row after ${env['warmupSeconds']} s warm-up, ${env['rounds']} round(s) (median shown); ` +
      `load average ${env['loadAverageAtStart']} at start; source ${env['source']}.`,
    ...(env['cpuProfile'] === 'yes' ? ['', '**Gatehouse ran under `--cpu-prof`: its rows are slowed by the profiler; do not compare them with unprofiled runs.**'] : []),
    '',
    '| row | what | tokens/s | p50 ms | p99 ms | requests | non-2xx | load avg |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const name of ALL_ROWS) {
    const row = report.rows[name];
    if (row === undefined) continue;
    lines.push(`| ${name} | ${row.label} | ${fmt(row.tokensPerSecond)} | ${fmt(row.p50Ms, 1)} | ${fmt(row.p99Ms, 1)} | ${fmt(row.requests)} | ${row.non2xx} | ${row.loadAverage.toFixed(1)} |`);
  }
  const bound = report.cryptoBound;
  lines.push(
    '',
    'Single-core crypto bound (in-process, node:crypto ES256 sign + src/tokens/jwe.ts):',
    '',
    '| bound | µs per token | tokens/s |',
    '|---|---:|---:|',
    `| plain: ES256 sign | ${fmt(bound.signMicros, 1)} | ${fmt(bound.plainTokensPerSecond)} |`,
    `| inner: sign + inner JWE | ${fmt(bound.signEncryptMicros, 1)} | ${fmt(bound.innerTokensPerSecond)} |`,
    `| nested: sign + inner JWE + whole-token JWE | ${fmt(bound.nestedMicros, 1)} | ${fmt(bound.nestedTokensPerSecond)} |`,
    '',
    ...(report.memory === undefined ? [] : [rssLine('its rows', report.memory), '']),
    ...checksTable(report.checks),
    '',
    'Figures drift ±30 % between runs on a shared machine; compare the ratios within one run. ' +
      '"load avg" is the 1-minute load average at the end of the row: this run itself accounts for about 2; more means other work shared the cores.',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const stamp = fileStamp(started);
  await mkdir(RESULTS_DIR, { recursive: true });
  const wantGatehouse = settings.rows.some((row) => row !== 'bare');
  const wantBare = settings.rows.includes('bare');

  log(`crypto bound: ${settings.cryptoMs} ms per measurement, nothing else running`);
  const cryptoBound = measureCryptoBound();
  log(`crypto bound: sign ${cryptoBound.signMicros.toFixed(1)} µs, sign + inner JWE ${cryptoBound.signEncryptMicros.toFixed(1)} µs`);

  let database: BenchDatabase | undefined;
  let gatehouse: GatehouseSetup | undefined;
  let bare: BareSetup | undefined;
  const cleanup = async () => {
    await Promise.allSettled([gatehouse?.gatehouse.child.stop(), bare?.child.stop()]);
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    if (gatehouse !== undefined) await rm(gatehouse.gatehouse.dataDir, { recursive: true, force: true });
  };
  onAbort(cleanup);

  try {
    if (wantGatehouse) {
      database = await createBenchDatabase(settings.databaseUrl);
      log(`starting Gatehouse on ${database.kind}${settings.cpuProf ? ' under --cpu-prof' : ''}`);
      gatehouse = await startGatehouse(database, stamp);
    }
    if (wantBare) {
      log('starting the bare oidc-provider');
      bare = await startBare();
    }
    await checkTokens(gatehouse, bare);
    log('tokens checked: signatures, typ, inner jti, nested cty JWT');

    const targets = settings.rows.map((row) => (row === 'bare' ? bare!.target : gatehouse!.targets[row]));
    const runs = new Map<RowName, RunResult[]>();
    const memorySampler = sampleRss(gatehouse?.gatehouse.child.process.pid);
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of targets) {
        if (round === 1 && settings.warmupSeconds > 0) {
          log(`${target.row}: warm-up ${settings.warmupSeconds} s`);
          await failOnBadResponses(target, await drive(target, settings.warmupSeconds, { connections: settings.connections }));
        }
        const run = await drive(target, settings.seconds, { connections: settings.connections });
        await failOnBadResponses(target, run);
        log(`${target.row} (round ${round}): ${run.tokensPerSecond.toFixed(0)} tokens/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, load ${run.loadAverage.toFixed(1)}`);
        runs.set(target.row, [...(runs.get(target.row) ?? []), run]);
      }
    }
    const memory = memorySampler.stop();

    const rows: Report['rows'] = {};
    for (const target of targets) {
      const rounds = runs.get(target.row) ?? [];
      rows[target.row] = { ...median(rounds, (run) => run.tokensPerSecond), label: target.label, rounds };
    }
    const checks = [...buildChecks(rows, cryptoBound), ...rssCheck('bench:tokens rows', memory)];
    const nodeVersion = process.version;
    const report: Report = {
      date: started.toISOString(),
      environment: {
        node: nodeVersion,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        database: database?.kind ?? 'none',
        connections: settings.connections,
        seconds: settings.seconds,
        warmupSeconds: settings.warmupSeconds,
        rounds: settings.rounds,
        cpuProfile: settings.cpuProf ? 'yes' : 'no',
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
        source: sourceVersion(),
      },
      rows,
      cryptoBound,
      memory,
      checks,
    };

    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/tokens-${stamp}.md and .json`);
    await writeBenchOutput({ title: 'Client credentials: plain, inner, nested vs bare oidc-provider and the crypto bound', markdown: text, checks, data: report });

    if (gatehouse !== undefined) {
      await writeProfileSummary(gatehouse.gatehouse, `Gatehouse CPU profile, rows ${settings.rows.join(', ')}`, path.join(RESULTS_DIR, `tokens-${stamp}-profile.md`));
    }
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

// Bound the whole run: every row's warm-up and measurement, plus start-up and slack.
const budgetMs =
  (settings.rows.length * (settings.rounds * (settings.seconds + 5) + settings.warmupSeconds + 5) + (3 * settings.cryptoMs) / 1000 + 300) * 1000;
await runBench(budgetMs, main);
