import { generateKeyPairSync } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { createVerifier, type VerifiedToken, type Verifier } from '../src/verifier/index.js';
import {
  adminPost,
  alive,
  basic,
  checksTable,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  envFlag,
  envNumber,
  fileStamp,
  fmt,
  launchGatehouse,
  log,
  onAbort,
  requestToken,
  RESULTS_DIR,
  runBench,
  sourceVersion,
  TOKEN_BODY,
  writeBenchOutput,
  type BenchDatabase,
  type Check,
  type Gatehouse,
} from './support.js';

/**
 * `npm run bench:verifier`: verifications per second of `src/verifier` in this process, on one core
 * (one verification at a time), for tokens seen the first time and for tokens seen before (issue 9).
 *
 * Gatehouse runs as a child (PostgreSQL, PGlite when unreachable) and issues real access tokens
 * (ES256 JWS with an inner ECDH-ES+A256KW / A256GCM JWE) for a resource server with an inner key;
 * the verifiers find its JWKS through discovery, as a resource server does. Gatehouse is idle while
 * the verifiers are timed.
 *
 * Environment (all optional):
 *   BENCH_VERIFIER_TOKENS=1000      distinct tokens verified fresh per verifier
 *   BENCH_VERIFIER_SEEN_SECONDS=2   measured seconds per "seen before" row
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
 *   BENCH_ENFORCE=1                 exit 1 when a target is not met
 */

const settings = {
  tokens: envNumber('BENCH_VERIFIER_TOKENS', 1000, 100, 20_000),
  seenSeconds: envNumber('BENCH_VERIFIER_SEEN_SECONDS', 2, 0.2, 60),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  enforce: envFlag('BENCH_ENFORCE'),
};

/** Tokens used only to warm up each verifier (discovery, JWKS, JIT), never timed. */
const WARMUP_TOKENS = 100;
const TARGET_SEEN_PER_SECOND = 20_000;
const AUDIENCE = 'https://verifier.bench.invalid';

interface Row {
  readonly name: string;
  readonly what: string;
  readonly verifications: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly microsEach: number;
  /** CPU time of this whole process (all threads: WebCrypto runs on libuv's pool) over wall time. */
  readonly coresUsed: number;
  /** Verifications per second of that CPU time: the per-core rate even when other work took turns on the core. */
  readonly perCpuSecond: number;
  /** For "seen" rows: the share answered from the verification cache (the same result object). */
  readonly hitRatio: number | undefined;
}

function measured(name: string, what: string, verifications: number, startNs: bigint, cpuStart: NodeJS.CpuUsage, hitRatio?: number): Row {
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  return {
    name,
    what,
    verifications,
    seconds,
    perSecond: verifications / seconds,
    microsEach: (seconds * 1e6) / verifications,
    coresUsed: (cpu.user + cpu.system) / 1e6 / seconds,
    perCpuSecond: verifications / ((cpu.user + cpu.system) / 1e6),
    hitRatio,
  };
}

/** Each token verified once, one at a time. Returns the results (kept to recognise cache hits later). */
async function fresh(name: string, what: string, verifier: Verifier, tokens: readonly string[]): Promise<{ row: Row; results: VerifiedToken[] }> {
  const results: VerifiedToken[] = [];
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (const token of tokens) results.push(await verifier.verify(token));
  const row = measured(name, what, tokens.length, start, cpuStart);
  log(`${name}: ${fmt(row.perSecond)} verifications/s (${fmt(row.microsEach, 1)} µs each, ${row.coresUsed.toFixed(2)} cores)`);
  return { row, results };
}

/** The same tokens again, round after round, for `settings.seenSeconds`, one at a time. */
async function seen(name: string, what: string, verifier: Verifier, tokens: readonly string[], first: readonly VerifiedToken[]): Promise<Row> {
  const limit = BigInt(Math.round(settings.seenSeconds * 1e9));
  let verifications = 0;
  let hits = 0;
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  do {
    for (let i = 0; i < tokens.length; i++) {
      const result = await verifier.verify(tokens[i]!);
      if (result === first[i]) hits += 1;
      verifications += 1;
      // Check the clock every 256 verifications, so a slow row still stops on time.
      if ((verifications & 255) === 0 && process.hrtime.bigint() - start >= limit) break;
    }
  } while (process.hrtime.bigint() - start < limit);
  const row = measured(name, what, verifications, start, cpuStart, hits / verifications);
  log(`${name}: ${fmt(row.perSecond)} verifications/s (${fmt(row.microsEach, 1)} µs each, ${row.coresUsed.toFixed(2)} cores, ${(100 * row.hitRatio!).toFixed(1)} % cache hits)`);
  return row;
}

/** Issues `count` distinct inner tokens, 16 requests in flight. */
async function issueTokens(url: string, authorization: string, count: number): Promise<string[]> {
  const tokens: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      tokens.push(
        await requestToken(url, authorization, TOKEN_BODY).catch((error: unknown) => {
          throw new Error(`POST /token failed after ${tokens.length} tokens: ${String((error as Error).cause ?? error)}`, { cause: error });
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  if (new Set(tokens).size !== tokens.length) throw new Error('Gatehouse issued the same token twice');
  return tokens;
}

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly rows: Row[];
  readonly checks: Check[];
}

function markdown(report: Report): string {
  const env = report.environment;
  const lines = [
    `# Verifier benchmark, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; \`src/verifier\` in the benchmark process, one verification at a time; ` +
      `${env['tokens']} distinct tokens issued by Gatehouse (${env['database']}): ES256 JWS with an inner JWE (ECDH-ES+A256KW, P-256, A256GCM), ` +
      `JWKS found through discovery; "seen" rows run ${env['seenSeconds']} s each; verification cache at its defaults (5 s, 10 000 tokens) unless stated; ` +
      `load average ${env['loadAverageAtStart']} at start, ${env['loadAverageAtEnd']} at the end; source ${env['source']}.`,
    '',
    '| row | what | verifications/s | µs each | verifications | cores used | per CPU-second | cache hits |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...report.rows.map(
      (row) =>
        `| ${row.name} | ${row.what} | ${fmt(row.perSecond)} | ${fmt(row.microsEach, 1)} | ${fmt(row.verifications)} | ${row.coresUsed.toFixed(2)} | ${fmt(row.perCpuSecond)} | ${row.hitRatio === undefined ? '—' : `${(100 * row.hitRatio).toFixed(1)} %`} |`,
    ),
    '',
    ...checksTable(report.checks),
    '',
    '"cores used" is this process\'s CPU time (every thread: WebCrypto runs on libuv\'s pool) over wall time; about 1 means it had a core to itself, ' +
      'well below 1 that other work took turns on the cores, and then "per CPU-second" (verifications over that CPU time) is the better per-core figure. ' +
      'The targets are checked on the wall-clock rate. ' +
      'A "seen" row counts a cache hit when the verifier returned the very result object of the token\'s first verification.',
    '',
  ];
  return lines.join('\n');
}

function buildChecks(rows: Record<string, Row>): Check[] {
  const checks: Check[] = [];
  for (const [name, label] of [
    ['seen, inner', 'seen before, with innerKey: verifications/s'],
    ['seen, signature only', 'seen before, without innerKey: verifications/s'],
  ] as const) {
    const row = rows[name];
    if (row === undefined) continue;
    checks.push({ name: label, value: row.perSecond, display: fmt(row.perSecond), target: `≥ ${fmt(TARGET_SEEN_PER_SECOND)}`, met: row.perSecond >= TARGET_SEEN_PER_SECOND });
  }
  const ratio = (name: string, over: string, label: string) => {
    const a = rows[name];
    const b = rows[over];
    if (a === undefined || b === undefined) return;
    const value = a.perSecond / b.perSecond;
    checks.push({ name: label, value, display: `${value.toFixed(1)}×`, target: '—', met: undefined });
  };
  ratio('seen, inner', 'fresh, inner', 'seen / fresh, with innerKey');
  ratio('seen, inner', 'seen, cache off', 'seen with the cache / seen with it off');
  ratio('fresh, signature only', 'fresh, inner', 'fresh: signature only / with inner decryption');
  return checks;
}

async function main(): Promise<number> {
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const stamp = fileStamp(started);
  await mkdir(RESULTS_DIR, { recursive: true });

  let database: BenchDatabase | undefined;
  let gatehouse: Gatehouse | undefined;
  const cleanup = async () => {
    await gatehouse?.child.stop();
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    if (gatehouse !== undefined) await rm(gatehouse.dataDir, { recursive: true, force: true });
  };
  onAbort(cleanup);

  try {
    database = await createBenchDatabase(settings.databaseUrl);
    log(`starting Gatehouse on ${database.kind}`);
    gatehouse = await launchGatehouse(database);
    const { url } = gatehouse;

    const adminToken = await gatehouse.adminToken(['admin:clients', 'admin:resource-servers']);
    const { privateKey: innerKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await adminPost(url, adminToken, '/resource-servers', {
      identifier: AUDIENCE,
      name: 'bench verifier',
      scopes: ['bench:read'],
      signing_alg: 'ES256',
      inner_encryption_jwk: { ...publicKey.export({ format: 'jwk' }), kid: 'bench-inner', use: 'enc', alg: 'ECDH-ES+A256KW' },
    });
    const client = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
      client_name: 'bench verifier',
      grant_types: ['client_credentials'],
      allowed_resources: [AUDIENCE],
    });
    log(`Gatehouse ready after ${((Date.now() - started.getTime()) / 1000).toFixed(1)} s; issuing ${settings.tokens + 3 * WARMUP_TOKENS} tokens`);
    const all = await issueTokens(url, basic(client.client_id, client.client_secret), settings.tokens + 3 * WARMUP_TOKENS);
    const tokens = all.slice(0, settings.tokens);
    const warmups = [0, 1, 2].map((i) => all.slice(settings.tokens + i * WARMUP_TOKENS, settings.tokens + (i + 1) * WARMUP_TOKENS));

    const verifiers = {
      inner: createVerifier({ issuer: url, audience: AUDIENCE, innerKey }),
      signatureOnly: createVerifier({ issuer: url, audience: AUDIENCE }),
      cacheOff: createVerifier({ issuer: url, audience: AUDIENCE, innerKey, cacheSize: 0 }),
    };
    // Discovery, the JWKS fetch and JIT warm-up, on tokens not timed.
    for (const [i, verifier] of [verifiers.inner, verifiers.signatureOnly, verifiers.cacheOff].entries()) {
      for (let round = 0; round < 3; round++) for (const token of warmups[i]!) await verifier.verify(token);
    }
    // The timed tokens are checked by the timed rows themselves (every verification must succeed); here
    // one warm-up token shows that they carry what the rows claim to decrypt.
    const sample = await verifiers.inner.verify(warmups[0]![0]!);
    if (sample.claims.iss !== url || typeof sample.claims.inner !== 'string' || sample.inner?.jti !== sample.claims.jti) {
      throw new Error('the tokens carry no inner layer that decrypts to the outer jti');
    }
    log(`tokens issued and checked (ES256 at+jwt, inner JWE decrypts to the outer jti) after ${((Date.now() - started.getTime()) / 1000).toFixed(1)} s`);

    const rows: Row[] = [];
    // Each "seen" row follows its "fresh" row at once, so its tokens are within the 5 s cache age.
    const inner = await fresh('fresh, inner', 'first sight: signature + inner JWE decryption', verifiers.inner, tokens);
    rows.push(inner.row);
    rows.push(await seen('seen, inner', 'seen before, with innerKey (verification cache)', verifiers.inner, tokens, inner.results));
    const plain = await fresh('fresh, signature only', 'first sight, no innerKey: signature only', verifiers.signatureOnly, tokens);
    rows.push(plain.row);
    rows.push(await seen('seen, signature only', 'seen before, no innerKey (verification cache)', verifiers.signatureOnly, tokens, plain.results));
    // Untimed beyond its log line: the same work as "fresh, inner"; it fills the per-jti inner cache.
    const off = await fresh('fresh, cache off', 'first sight, innerKey, cacheSize 0', verifiers.cacheOff, tokens);
    rows.push(await seen('seen, cache off', 'seen before, innerKey, cacheSize 0: signature again (inner layer from its per-jti cache)', verifiers.cacheOff, tokens, off.results));

    const byName = Object.fromEntries(rows.map((row) => [row.name, row]));
    const checks = buildChecks(byName);
    const report: Report = {
      date: started.toISOString(),
      environment: {
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        database: database.kind,
        tokens: settings.tokens,
        seenSeconds: settings.seenSeconds,
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
        loadAverageAtEnd: Number((loadavg()[0] ?? 0).toFixed(2)),
        source: sourceVersion(),
      },
      rows,
      checks,
    };
    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `verifier-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `verifier-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/verifier-${stamp}.md and .json`);
    await writeBenchOutput({ title: 'The verifier: verifications per second, fresh tokens and tokens seen before', markdown: text, checks, data: report });
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } catch (error) {
    if (gatehouse !== undefined) log(`Gatehouse ${alive(gatehouse.child.process) ? 'is running' : 'has exited'}; its last output:\n${gatehouse.child.output.stderr.slice(-4000)}${gatehouse.child.output.stdout.slice(-2000)}`);
    throw error;
  } finally {
    await cleanup();
  }
}

// Start-up, issuing and the fresh rows take seconds; the seen rows take seenSeconds each.
await runBench((120 + 3 * settings.seenSeconds + settings.tokens / 50) * 1000, main);
