import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { calculateJwkThumbprint, compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import { importRecipient } from '../src/tokens/jwe.js';
import { createPki, type Issued, type Pki } from '../test/support/pki.js';
import {
  adminPost,
  basic,
  checksTable,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  drive,
  driveNewConnections,
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
  postToken,
  postTokenOk,
  requestToken,
  rssCheck,
  rssLine,
  RESULTS_DIR,
  ROOT,
  runBench,
  sampleCpu,
  sampleRss,
  servesDatabase,
  sourceVersion,
  spawnChild,
  TOKEN_BODY,
  waitUntil,
  writeBenchOutput,
  writeProfileSummary,
  type BenchDatabase,
  type Check,
  type Child,
  type CpuSample,
  type Gatehouse,
  type RssReport,
  type RunResult,
  type PerRequest,
  type TokenTarget,
} from './support.js';

/**
 * `npm run bench:tokens`: client-credentials throughput of the token endpoint (issue "Benchmark").
 *
 * Rows: Gatehouse (one process, PostgreSQL) issuing plain JWTs, JWTs with the inner JWE layer,
 * and nested (whole-token encrypted) JWTs; the plain token with a DPoP proof per request (a new
 * jti, signed by the load generator for each request, RFC 9449 nonces), and over HTTPS (a second
 * Gatehouse process on the same database serving TLS itself, SPEC §8) with client_secret_basic
 * and with tls_client_auth; token exchange (RFC 8693, SPEC §9: one service's inner-layer token
 * exchanged by another client for an inner-layer token to a third resource server); a bare oidc-provider issuing plain ES256 JWTs
 * (bench/bare-provider.ts); and the single-core crypto bound measured in this process.
 * Every server is a child process on 127.0.0.1; every child and the whole run are time-bounded.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=10          measured seconds per row
 *   BENCH_WARMUP_SECONDS=3    warm-up seconds per row (first round only)
 *   BENCH_CONNECTIONS=16      autocannon connections
 *   BENCH_ROUNDS=1            repeat the rows; the median round per row is reported
 *   BENCH_ROWS=plain,inner,nested,exchange,dpop,tls,mtls,new-conn,tls-resume,bare,bare-inner,bare-nested   a subset of rows
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (PGlite when unreachable)
 *   BENCH_CPU_PROF=1          run Gatehouse under --cpu-prof and summarise its top frames
 *   BENCH_CRYPTO_MS=2000      time per crypto-bound measurement
 *   BENCH_ENFORCE=1           exit 1 when a target is not met
 */

type BareRowName = 'bare' | 'bare-inner' | 'bare-nested';
type RowName = 'plain' | 'inner' | 'nested' | 'exchange' | 'dpop' | 'tls' | 'mtls' | 'new-conn' | 'tls-resume' | BareRowName;
const ALL_ROWS: readonly RowName[] = ['plain', 'inner', 'nested', 'exchange', 'dpop', 'tls', 'mtls', 'new-conn', 'tls-resume', 'bare', 'bare-inner', 'bare-nested'];
const BARE_ROWS: readonly RowName[] = ['bare', 'bare-inner', 'bare-nested'];
/** Rows served by the HTTPS Gatehouse. */
type TlsRowName = 'tls' | 'mtls' | 'tls-resume';
const TLS_ROWS: readonly RowName[] = ['tls', 'mtls', 'tls-resume'];
/** Rows served by the HTTP Gatehouse. */
type HttpRowName = 'plain' | 'inner' | 'nested' | 'exchange' | 'dpop' | 'new-conn';

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

const TARGETS = {
  /** Issue "Performance": the application around the provider costs at most a fifth of it. */
  plainOverBare: 0.8,
  /** The same issue: Gatehouse's layers at least twice as fast as jose's on a bare provider's event loop. */
  innerOverBareInner: 2,
  nestedOverBareNested: 2,
  innerOverBare: 0.8,
  innerTokensPerSecond: 1200,
  innerCostOverPlain: 0.1,
  nestedCostOverPlain: 0.5,
  innerOverCryptoBound: 0.5,
  dpopCostOverPlain: 0.3,
  tlsCostOverPlain: 0.2,
  /** SPEC §9: an exchange verifies one token and issues one, so it should cost little more than issuing one. */
  exchangeOverInner: 0.7,
} as const;

// ---------------------------------------------------------------------------------------------
// Servers under test.

interface Target extends TokenTarget {
  readonly row: RowName;
  readonly label: string;
  /** The server process that answers this row (CPU accounting). */
  readonly pid: () => number | undefined;
  /** A new connection per request (driveNewConnections), instead of autocannon's kept-alive ones. */
  readonly newConnections?: boolean;
}

interface GatehouseSetup {
  readonly gatehouse: Gatehouse;
  readonly url: string;
  readonly targets: Record<HttpRowName, Target>;
  readonly innerKey: KeyObject;
  readonly dpop: DpopClient;
  readonly exchange: ExchangeSetup;
  /** Creates clients on this instance's admin API (the HTTPS instance shares its database). */
  readonly createClient: (body: Record<string, unknown>) => Promise<{ client_id: string; client_secret?: string }>;
}

/** The exchange row's parties (SPEC §9): whose token is exchanged, by whom, for which target. */
interface ExchangeSetup {
  readonly subjectAudience: string;
  readonly targetAudience: string;
  /** client_id of the service whose client-credentials token is the subject (the token's sub). */
  readonly subjectClientId: string;
  /** client_id of the exchanging client (the new token's act.sub). */
  readonly actorClientId: string;
  readonly subjectToken: string;
}

const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449) in the load generator: a proof per request, signed synchronously with
// node:crypto (ES256, P-256) in autocannon's setupRequest, so every request carries a new jti and
// a new signature and the signing cost lands on the client process, where it belongs. The nonce
// is the latest the server sent (DPoP-Nonce on the challenge, and on any answer that brings a new one).

interface DpopClient extends PerRequest {
  readonly thumbprint: string;
  /** Proofs signed, and how many times the server handed out a new nonce. */
  readonly stats: { proofs: number; nonces: number };
  /** One proof without a nonce, for the challenge. */
  proofWithout(): string;
}

function dpopClient(htu: string): DpopClient {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const jwk = { kty, crv, x, y } as JWK;
  const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = b64u({ typ: 'dpop+jwt', alg: 'ES256', jwk });
  let nonce: string | undefined;
  const stats = { proofs: 0, nonces: 0 };
  const proof = (withNonce: boolean) => {
    stats.proofs += 1;
    const input = `${header}.${b64u({ htm: 'POST', htu, jti: randomUUID(), iat: Math.floor(Date.now() / 1000), ...(withNonce && nonce !== undefined ? { nonce } : {}) })}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  const thumbprint = createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
  return {
    thumbprint,
    stats,
    proofWithout: () => proof(false),
    headers: () => ({ dpop: proof(true) }),
    onResponse(headers) {
      for (const [name, value] of Object.entries(headers)) {
        if (name.toLowerCase() !== 'dpop-nonce' || typeof value !== 'string' || value === nonce) continue;
        nonce = value;
        stats.nonces += 1;
      }
    },
  };
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
  const targets = {} as Record<HttpRowName, Target>;
  const pid = () => gatehouse.child.process.pid;
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
    targets[row] = { row, label: definitions[row].label, url, authorization: basic(client.client_id, client.client_secret), pid };
  }
  const createClient = (body: Record<string, unknown>) => adminPost<{ client_id: string; client_secret?: string }>(url, adminToken, '/clients', body);
  // The plain resource server, a client of its own, and a fresh DPoP proof on every request.
  const dpopBench = await createClient({ client_name: 'bench dpop', grant_types: ['client_credentials'], allowed_resources: ['https://plain.bench.invalid'] });
  const dpop = dpopClient(`${url}/token`);
  targets.dpop = {
    row: 'dpop',
    label: 'Gatehouse: ES256 JWT bound to a DPoP key (cnf.jkt), a new ES256 proof per request, nonce required',
    url,
    authorization: basic(dpopBench.client_id, dpopBench.client_secret ?? ''),
    perRequest: dpop,
    pid,
  };
  // SPEC §9: a service (client A) holds a client-credentials token for resource server A (inner
  // layer); client B exchanges it for a token to resource server B (inner layer). Both servers get
  // the longest lifetime so one subject token outlasts the run (the new token never outlives it).
  const exchangeSubject = 'https://exchange-subject.bench.invalid';
  const exchangeTarget = 'https://exchange-target.bench.invalid';
  for (const identifier of [exchangeSubject, exchangeTarget]) {
    await adminPost(url, adminToken, '/resource-servers', {
      identifier,
      name: `bench ${new URL(identifier).hostname.split('.')[0]}`,
      scopes: ['bench:read'],
      signing_alg: 'ES256',
      access_token_ttl: 86_400,
      inner_encryption_jwk: innerJwk,
    });
  }
  const subjectClient = await createClient({ client_name: 'bench exchange subject', grant_types: ['client_credentials'], allowed_resources: [exchangeSubject] });
  const actorClient = await createClient({
    client_name: 'bench exchange actor',
    grant_types: [TOKEN_EXCHANGE_GRANT],
    token_exchange: { subject_audiences: [exchangeSubject] },
    allowed_resources: [exchangeTarget],
  });
  const subjectToken = await requestToken(url, basic(subjectClient.client_id, subjectClient.client_secret ?? ''), TOKEN_BODY);
  const exchange: ExchangeSetup = { subjectAudience: exchangeSubject, targetAudience: exchangeTarget, subjectClientId: subjectClient.client_id, actorClientId: actorClient.client_id, subjectToken };
  targets.exchange = {
    row: 'exchange',
    label: "Gatehouse: token exchange (RFC 8693): a service's inner-layer token verified, an ES256 JWT + inner JWE for another resource server issued (act, audited)",
    url,
    authorization: basic(actorClient.client_id, actorClient.client_secret ?? ''),
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: exchangeTarget,
      scope: 'bench:read',
    }).toString(),
    pid,
  };
  // The plain row's client and token, a new TCP connection per request: the baseline of tls-resume.
  targets['new-conn'] = {
    ...targets.plain,
    row: 'new-conn',
    label: 'Gatehouse: ES256 JWT, a new TCP connection per request (node:http, Connection: close)',
    newConnections: true,
  };
  return { gatehouse, url, targets, innerKey, dpop, exchange, createClient };
}

// ---------------------------------------------------------------------------------------------
// HTTPS: a second Gatehouse process on the same database, serving TLS itself (SPEC §8) with
// certificates made by openssl (test/support/pki.ts), asking for an optional client certificate.
// The load generator keeps its 16 connections alive (autocannon), so each connection does one
// full handshake and every request after it only pays for the record layer.

interface TlsSetup {
  readonly gatehouse: Gatehouse;
  readonly pki: Pki;
  readonly clientCert: Issued;
  readonly targets: Record<TlsRowName, Target>;
}

async function startTlsGatehouse(database: BenchDatabase, http: GatehouseSetup, stamp: string): Promise<TlsSetup> {
  const pki = await createPki();
  try {
    const serverCert = await pki.issue('server', '/CN=127.0.0.1', { san: 'IP:127.0.0.1,DNS:localhost' });
    const clientCert = await pki.issue('client', '/O=Gatehouse bench/CN=bench mtls client');
    const profileFile = settings.cpuProf ? path.join(RESULTS_DIR, `gatehouse-tls-${stamp}.cpuprofile`) : undefined;
    const gatehouse = await launchGatehouse(database, {
      profileFile,
      env: http.gatehouse.sharedEnv,
      tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, clientCaFile: pki.ca.certFile },
    });
    const resource = 'https://plain.bench.invalid';
    const secretClient = await http.createClient({ client_name: 'bench tls', grant_types: ['client_credentials'], allowed_resources: [resource] });
    const certClient = await http.createClient({
      client_name: 'bench mtls',
      grant_types: ['client_credentials'],
      allowed_resources: [resource],
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_subject_dn: 'CN=bench mtls client,O=Gatehouse bench',
      tls_client_certificate_bound_access_tokens: true,
    });
    const [ca, cert, key] = await Promise.all([readFile(pki.ca.certFile), readFile(clientCert.certFile), readFile(clientCert.keyFile)]);
    const pid = () => gatehouse.child.process.pid;
    const targets = {
      tls: {
        row: 'tls',
        label: 'Gatehouse over HTTPS (TLS 1.3, kept-alive connections): ES256 JWT, client_secret_basic',
        url: gatehouse.url,
        authorization: basic(secretClient.client_id, secretClient.client_secret ?? ''),
        tls: { ca },
        pid,
      },
      mtls: {
        row: 'mtls',
        label: 'Gatehouse over HTTPS with a client certificate: tls_client_auth, certificate-bound ES256 JWT (cnf.x5t#S256)',
        url: gatehouse.url,
        // RFC 8705: the client authenticates with its certificate; client_id goes in the body.
        authorization: undefined,
        tls: { ca, cert, key },
        pid,
        body: `${TOKEN_BODY}&client_id=${encodeURIComponent(certClient.client_id)}`,
      },
      'tls-resume': {
        row: 'tls-resume',
        label: 'Gatehouse over HTTPS, a new connection per request resuming the TLS session (node:https): ES256 JWT, client_secret_basic',
        url: gatehouse.url,
        authorization: basic(secretClient.client_id, secretClient.client_secret ?? ''),
        tls: { ca },
        pid,
        newConnections: true,
      },
    } satisfies Record<TlsRowName, Target>;
    return { gatehouse, pki, clientCert, targets };
  } catch (error) {
    await pki.close();
    throw error;
  }
}

interface BareSetup {
  readonly child: Child;
  readonly targets: Record<BareRowName, Target>;
}

const BARE_RESOURCE = 'https://bare.bench.invalid';

async function startBare(): Promise<BareSetup> {
  const port = await freePort();
  const client = { id: 'bench-bare', secret: randomBytes(32).toString('base64url') };
  // The same Node flag as Gatehouse (npm start): oidc-provider's AsyncLocalStorage without promise hooks, for both.
  const child = spawnChild('bare oidc-provider', ['--experimental-async-context-frame', '--import', './bench/exit-with-parent.ts', 'bench/bare-provider.ts'], {
    PORT: String(port),
    BARE_CLIENT_ID: client.id,
    BARE_CLIENT_SECRET: client.secret,
    BARE_RESOURCE,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil('ready', child, () => Promise.resolve(child.output.stdout.includes('ready ')), 60_000);
  const version = (JSON.parse(await readFile(path.join(ROOT, 'node_modules/oidc-provider/package.json'), 'utf8')) as { version: string }).version;
  const target = (row: BareRowName, id: string, label: string): Target => ({ row, label: `bare oidc-provider ${version}: ${label}`, url, authorization: basic(id, client.secret), pid: () => child.process.pid });
  return {
    child,
    targets: {
      bare: target('bare', client.id, 'ES256 JWT, in-memory'),
      'bare-inner': target('bare-inner', `${client.id}-inner`, 'ES256 JWT + inner JWE with jose on the event loop'),
      'bare-nested': target('bare-nested', `${client.id}-nested`, 'inner, then the whole token encrypted with jose'),
    },
  };
}

/** Proves each row issues what it claims before timing it (signature, typ, the JWE layers). */
async function checkTokens(gatehouse: GatehouseSetup | undefined, tls: TlsSetup | undefined, bare: BareSetup | undefined): Promise<void> {
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

    // Exchange: the new token is for the target, keeps the subject's sub, names the caller in act,
    // carries an inner layer for the target, and the answer says what it is (RFC 8693 §2.2.1).
    const { exchange } = gatehouse;
    const subject = await verify(exchange.subjectToken, exchange.subjectAudience);
    if (typeof subject.payload['inner'] !== 'string') throw new Error('exchange row: the subject token has no inner layer');
    const exchanged = await postTokenOk(gatehouse.targets.exchange);
    if (exchanged['issued_token_type'] !== ACCESS_TOKEN_TYPE || exchanged['refresh_token'] !== undefined) throw new Error(`exchange row: answer ${JSON.stringify(exchanged).slice(0, 300)}`);
    const delegated = await verify(exchanged.access_token, exchange.targetAudience);
    if (delegated.payload.sub !== exchange.subjectClientId) throw new Error('exchange row: sub is not the subject token\'s');
    if ((delegated.payload['act'] as { sub?: unknown } | undefined)?.sub !== exchange.actorClientId) throw new Error('exchange row: act.sub is not the exchanging client');
    const delegatedInner = delegated.payload['inner'];
    if (typeof delegatedInner !== 'string') throw new Error('exchange row: the new token has no inner layer');
    const openedDelegated = JSON.parse(decoder.decode((await compactDecrypt(delegatedInner, gatehouse.innerKey)).plaintext)) as { jti?: unknown };
    if (openedDelegated.jti !== delegated.payload.jti) throw new Error('exchange row: inner.jti differs from the outer jti');

    // DPoP: a proof without a nonce is challenged (RFC 9449 §8) and the challenge's nonce is kept;
    // then a fresh proof with it gets a DPoP token bound to the key.
    const dpopTarget = gatehouse.targets.dpop;
    const challenge = await postToken({ ...dpopTarget, perRequest: { headers: () => ({ dpop: gatehouse.dpop.proofWithout() }), onResponse: (headers) => gatehouse.dpop.onResponse(headers) } });
    if (challenge.status !== 400 || !challenge.text.includes('use_dpop_nonce') || typeof challenge.headers['dpop-nonce'] !== 'string') {
      throw new Error(`dpop row: a proof without a nonce answered ${challenge.status} ${challenge.text.slice(0, 300)}, not use_dpop_nonce with a DPoP-Nonce`);
    }
    const bound = await postTokenOk(dpopTarget);
    if (bound.token_type !== 'DPoP') throw new Error(`dpop row: token_type ${bound.token_type}, not DPoP`);
    const dpopToken = await verify(bound.access_token, 'https://plain.bench.invalid');
    if ((dpopToken.payload['cnf'] as { jkt?: unknown } | undefined)?.jkt !== gatehouse.dpop.thumbprint) throw new Error('dpop row: cnf.jkt is not the proof key');

    if (tls !== undefined) {
      // Same database, so the same signing keys; the HTTPS instance has its own issuer.
      const overTls = async (target: Target) => {
        const answer = await postTokenOk(target);
        const { payload } = await jwtVerify(answer.access_token, jwks, { issuer: tls.gatehouse.url, audience: 'https://plain.bench.invalid', typ: 'at+jwt', algorithms: ['ES256'] });
        return { answer, payload };
      };
      const secret = await overTls(tls.targets.tls);
      if (secret.answer.token_type !== 'Bearer' || secret.payload['cnf'] !== undefined) throw new Error('tls row: expected a plain Bearer token');
      const cert = await overTls(tls.targets.mtls);
      const x5t = createHash('sha256').update(tls.clientCert.certificate.raw).digest('base64url');
      if ((cert.payload['cnf'] as Record<string, unknown> | undefined)?.['x5t#S256'] !== x5t) throw new Error('mtls row: cnf.x5t#S256 is not the client certificate');
    }
  }
  if (bare !== undefined) {
    const jwks = createRemoteJWKSet(new URL(`${bare.targets.bare.url}/jwks`));
    const plain = await jwtVerify(await requestToken(bare.targets.bare.url, bare.targets.bare.authorization, TOKEN_BODY), jwks, { audience: BARE_RESOURCE, typ: 'at+jwt', algorithms: ['ES256'] });
    if (plain.payload['inner'] !== undefined) throw new Error('bare row: expected no inner layer');
    const inner = await jwtVerify(await requestToken(bare.targets.bare.url, bare.targets['bare-inner'].authorization, TOKEN_BODY), jwks, { audience: `${BARE_RESOURCE}/inner` });
    if (typeof inner.payload['inner'] !== 'string' || inner.payload['inner'].split('.').length !== 5) throw new Error('bare-inner row: expected an inner JWE');
    const nested = await requestToken(bare.targets.bare.url, bare.targets['bare-nested'].authorization, TOKEN_BODY);
    if (nested.split('.').length !== 5 || decodeProtectedHeader(nested).cty !== 'JWT') throw new Error('bare-nested row: expected a whole-token JWE with cty JWT');
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
  /** The load generator's cost per DPoP proof: build and ES256-sign it (node:crypto). */
  readonly dpopSignMicros: number;
  /**
   * What oidc-provider does with a proof (lib/helpers/validate_dpop.js): jose jwtVerify with the
   * embedded JWK (key import + ES256 verify) and the key's RFC 7638 thumbprint.
   */
  readonly dpopVerifyMicros: number;
  /** The same in CPU time of this process (every thread): robust to the waits that wall time includes. */
  readonly dpopVerifyCpuMicros: number;
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

/** Wall µs and CPU µs (this process, every thread) per awaited operation, one at a time. */
async function microsPerAsyncOp(operation: () => Promise<unknown>, minMs: number): Promise<{ wall: number; cpu: number }> {
  for (let i = 0; i < 300; i++) await operation();
  const limit = BigInt(Math.round(minMs * 1e6));
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed: bigint;
  do {
    for (let i = 0; i < 50; i++) await operation();
    ops += 50;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  const cpu = process.cpuUsage(cpuStart);
  return { wall: Number(elapsed) / 1e3 / ops, cpu: (cpu.user + cpu.system) / ops };
}

async function measureCryptoBound(): Promise<CryptoBound> {
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
  const dpop = dpopClient('http://127.0.0.1:3000/token');
  dpop.onResponse({ 'dpop-nonce': randomBytes(32).toString('base64url') });
  const dpopSignMicros = microsPerOp(() => dpop.headers(), settings.cryptoMs);
  const proof = dpop.headers()['dpop']!;
  const dpopVerify = await microsPerAsyncOp(async () => {
    const { protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { algorithms: ['ES256'], typ: 'dpop+jwt' });
    return calculateJwkThumbprint(protectedHeader.jwk!);
  }, settings.cryptoMs);
  return {
    signMicros,
    signEncryptMicros,
    nestedMicros,
    plainTokensPerSecond: 1e6 / signMicros,
    innerTokensPerSecond: 1e6 / signEncryptMicros,
    nestedTokensPerSecond: 1e6 / nestedMicros,
    dpopSignMicros,
    dpopVerifyMicros: dpopVerify.wall,
    dpopVerifyCpuMicros: dpopVerify.cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// Report.

function buildChecks(rows: Partial<Record<RowName, RunResult>>, bound: CryptoBound): Check[] {
  const { plain, inner, nested, exchange, dpop, tls, mtls, bare } = rows;
  const bareInner = rows['bare-inner'];
  const bareNested = rows['bare-nested'];
  const newConn = rows['new-conn'];
  const tlsResume = rows['tls-resume'];
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
  if (exchange !== undefined && inner !== undefined) {
    const value = exchange.tokensPerSecond / inner.tokensPerSecond;
    checks.push({
      name: 'token exchanges / client credentials with an inner layer (exchange/inner)',
      value,
      display: `${value.toFixed(2)}×`,
      target: `≥ ${TARGETS.exchangeOverInner.toFixed(2)}×`,
      met: value >= TARGETS.exchangeOverInner,
    });
  }
  if (dpop !== undefined && plain !== undefined) {
    const value = 1 - dpop.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'DPoP cost over plain (1 − dpop/plain)', value, display: pct(value), target: `≤ ${pct(TARGETS.dpopCostOverPlain)}`, met: value <= TARGETS.dpopCostOverPlain });
  }
  if (tls !== undefined && plain !== undefined) {
    const value = 1 - tls.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'TLS cost over plain (1 − tls/plain)', value, display: pct(value), target: `≤ ${pct(TARGETS.tlsCostOverPlain)}`, met: value <= TARGETS.tlsCostOverPlain });
  }
  if (mtls !== undefined && plain !== undefined) {
    const value = 1 - mtls.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'mTLS (tls_client_auth) cost over plain (1 − mtls/plain)', value, display: pct(value), target: '—', met: undefined });
  }
  if (tlsResume !== undefined && newConn !== undefined) {
    const value = 1 - tlsResume.tokensPerSecond / newConn.tokensPerSecond;
    checks.push({
      name: 'TLS with session resumption, a connection per request, cost over plain HTTP the same way (1 − tls-resume/new-conn)',
      value,
      display: pct(value),
      target: `≤ ${pct(TARGETS.tlsCostOverPlain)}`,
      met: value <= TARGETS.tlsCostOverPlain,
    });
  }
  if (newConn !== undefined && plain !== undefined) {
    const value = 1 - newConn.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'a new TCP connection per request, cost over kept-alive (1 − new-conn/plain)', value, display: pct(value), target: '—', met: undefined });
  }
  const ratio = (name: string, a: RunResult | undefined, b: RunResult | undefined, target: number) => {
    if (a === undefined || b === undefined) return;
    const value = a.tokensPerSecond / b.tokensPerSecond;
    checks.push({ name, value, display: `${value.toFixed(2)}×`, target: `≥ ${target.toFixed(2)}×`, met: value >= target });
  };
  ratio('plain / bare', plain, bare, TARGETS.plainOverBare);
  ratio('inner / bare-inner (jose inner layer on the bare provider)', inner, bareInner, TARGETS.innerOverBareInner);
  ratio('nested / bare-nested', nested, bareNested, TARGETS.nestedOverBareNested);
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

/**
 * Who used the cores during a row (from /proc, in cores: CPU seconds per second): the server that
 * answers it, PostgreSQL (the bench database's backends and the shared processes), this process
 * (the load generator: autocannon, and the DPoP proofs it signs), anything else, the host's steal.
 */
interface Cores {
  readonly server: number;
  readonly postgres: number;
  readonly loadGenerator: number;
  /** Share of wall time the load generator's event loop was busy: near 1 means it was the bottleneck. */
  readonly loadGeneratorElu: number;
  readonly other: number;
  readonly machine: number;
  readonly stolen: number;
}

function coresBetween(before: CpuSample, after: CpuSample, serverPid: number | undefined, databaseName: string | undefined, elu: number): Cores {
  const seconds = (after.at - before.at) / 1000;
  const used = (pid: number) => ((after.processes.get(pid)?.seconds ?? 0) - (before.processes.get(pid)?.seconds ?? 0)) / seconds;
  const machine = (after.machine - before.machine) / seconds;
  const stolen = (after.steal - before.steal) / seconds;
  if (after.processes.size === 0) return { server: NaN, postgres: NaN, loadGenerator: NaN, loadGeneratorElu: elu, other: NaN, machine, stolen };
  const server = serverPid === undefined ? NaN : used(serverPid);
  let postgres = 0;
  for (const [pid, proc] of after.processes) if (servesDatabase(proc, databaseName)) postgres += used(pid);
  const loadGenerator = used(process.pid);
  return { server, postgres, loadGenerator, loadGeneratorElu: elu, other: Math.max(0, machine - server - postgres - loadGenerator), machine, stolen };
}

type RowRun = RunResult & { readonly cores: Cores; readonly resumed?: number };

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly rows: Partial<Record<RowName, RowRun & { label: string; rounds: RowRun[] }>>;
  readonly cryptoBound: CryptoBound;
  /** Gatehouse's memory over its rows (undefined: no Gatehouse row, or /proc not readable). */
  readonly memory: RssReport | undefined;
  /** The HTTPS instance's memory over its rows (tls, mtls, tls-resume). */
  readonly tlsMemory: RssReport | undefined;
  /** DPoP proofs the load generator signed, and how often the server handed out a new nonce. */
  readonly dpop: { proofs: number; nonces: number } | undefined;
  readonly checks: Check[];
}

function markdown(report: Report): string {
  const env = report.environment;
  const lines = [
    `# Token endpoint benchmark, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; Gatehouse on ${env['database']}, one process; ` +
      `autocannon ${env['connections']} connections (new-conn, tls-resume: as many node:http(s) loops, a connection per request), ` +
      'POST /token (client_secret_basic, client_credentials; exchange: RFC 8693 token exchange; mtls: tls_client_auth), ' +
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
    'DPoP proofs, one at a time in this process (not a token bound: the client signs, the server verifies; the verify is asynchronous WebCrypto, so its wall time includes thread-pool hops and, on a busy machine, waits for a core):',
    '',
    '| proof | µs per proof (wall) | CPU µs per proof (all threads) | proofs/s (wall) |',
    '|---|---:|---:|---:|',
    `| client: build + ES256-sign a proof (node:crypto, as the load generator does per request) | ${fmt(bound.dpopSignMicros, 1)} | (synchronous: = wall) | ${fmt(1e6 / bound.dpopSignMicros)} |`,
    `| server: jose jwtVerify with the embedded JWK + RFC 7638 thumbprint (oidc-provider's validate_dpop) | ${fmt(bound.dpopVerifyMicros, 1)} | ${fmt(bound.dpopVerifyCpuMicros, 1)} | ${fmt(1e6 / bound.dpopVerifyMicros)} |`,
    '',
    'Cores used during each row (/proc; CPU seconds per second of the row). "server" is the process answering the row (the HTTPS instance for tls, mtls and tls-resume); ' +
      '"load generator" is this process (autocannon on one event loop, plus the DPoP proofs it signs), "busy" its event-loop utilisation: near 100 % it, not the server, limits the row; ' +
      '"other" is everything else on the machine; "stolen" is time the host gave to other VMs:',
    '',
    '| row | server | PostgreSQL | load generator | busy | other | whole machine | stolen | server µs CPU per token | PostgreSQL µs per token |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...ALL_ROWS.flatMap((name) => {
      const row = report.rows[name];
      if (row === undefined) return [];
      const { cores } = row;
      const c = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '—');
      const perToken = (value: number) => (Number.isFinite(value) && row.tokensPerSecond > 0 ? fmt((value / row.tokensPerSecond) * 1e6) : '—');
      return [
        `| ${name} | ${c(cores.server)} | ${c(cores.postgres)} | ${c(cores.loadGenerator)} | ${Math.round(cores.loadGeneratorElu * 100)} % | ${c(cores.other)} | ${c(cores.machine)} | ${c(cores.stolen)} | ` +
          `${perToken(cores.server)} | ${perToken(cores.postgres)} |`,
      ];
    }),
    ...(report.environment['rounds'] === 1
      ? []
      : [
          '',
          'Every round (tokens/s; the table above shows the median round of each row):',
          '',
          `| row | ${Array.from({ length: Number(report.environment['rounds']) }, (_, i) => `round ${i + 1}`).join(' | ')} |`,
          `|---|${Array.from({ length: Number(report.environment['rounds']) }, () => '---:').join('|')}|`,
          ...ALL_ROWS.flatMap((name) => {
            const row = report.rows[name];
            return row === undefined ? [] : [`| ${name} | ${row.rounds.map((run) => fmt(run.tokensPerSecond)).join(' | ')} |`];
          }),
        ]),
    '',
    ...(report.rows['tls-resume']?.resumed === undefined
      ? []
      : [`tls-resume: ${fmt(report.rows['tls-resume'].resumed)} of ${fmt(report.rows['tls-resume'].requests)} connections resumed a TLS session (median round).`, '']),
    ...(report.dpop === undefined ? [] : [`DPoP: ${fmt(report.dpop.proofs)} proofs signed by the load generator, each used once; the server handed out a new nonce ${fmt(report.dpop.nonces)} time(s).`, '']),
    ...(report.memory === undefined ? [] : [rssLine('its rows', report.memory), '']),
    ...(report.tlsMemory === undefined ? [] : [rssLine('the HTTPS instance, rows tls, mtls and tls-resume', report.tlsMemory), '']),
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
  const wantGatehouse = settings.rows.some((row) => !BARE_ROWS.includes(row));
  const wantBare = settings.rows.some((row) => BARE_ROWS.includes(row));

  log(`crypto bound: ${settings.cryptoMs} ms per measurement, nothing else running`);
  const cryptoBound = await measureCryptoBound();
  log(
    `crypto bound: sign ${cryptoBound.signMicros.toFixed(1)} µs, sign + inner JWE ${cryptoBound.signEncryptMicros.toFixed(1)} µs; ` +
      `DPoP proof: sign ${cryptoBound.dpopSignMicros.toFixed(1)} µs, verify ${cryptoBound.dpopVerifyMicros.toFixed(1)} µs (${cryptoBound.dpopVerifyCpuMicros.toFixed(1)} µs CPU)`,
  );
  const wantTls = settings.rows.some((row) => TLS_ROWS.includes(row));

  let database: BenchDatabase | undefined;
  let gatehouse: GatehouseSetup | undefined;
  let tls: TlsSetup | undefined;
  let bare: BareSetup | undefined;
  const cleanup = async () => {
    await Promise.allSettled([gatehouse?.gatehouse.child.stop(), tls?.gatehouse.child.stop(), bare?.child.stop()]);
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    if (gatehouse !== undefined) await rm(gatehouse.gatehouse.dataDir, { recursive: true, force: true });
    if (tls !== undefined) await Promise.allSettled([rm(tls.gatehouse.dataDir, { recursive: true, force: true }), tls.pki.close()]);
  };
  onAbort(cleanup);

  try {
    if (wantGatehouse) {
      database = await createBenchDatabase(settings.databaseUrl);
      log(`starting Gatehouse on ${database.kind}${settings.cpuProf ? ' under --cpu-prof' : ''}`);
      gatehouse = await startGatehouse(database, stamp);
      if (wantTls) {
        log('starting a second Gatehouse serving HTTPS (SPEC §8) on the same database');
        tls = await startTlsGatehouse(database, gatehouse, stamp);
      }
    }
    if (wantBare) {
      log('starting the bare oidc-provider');
      bare = await startBare();
    }
    await checkTokens(gatehouse, tls, bare);
    log('tokens checked: signatures, typ, inner jti, nested cty JWT, exchange sub/act/inner, DPoP nonce challenge and cnf.jkt, TLS issuer and cnf.x5t#S256');

    const targets: Target[] = settings.rows.map((row) => {
      if (row === 'bare' || row === 'bare-inner' || row === 'bare-nested') return bare!.targets[row];
      if (row === 'tls' || row === 'mtls' || row === 'tls-resume') return tls!.targets[row];
      return gatehouse!.targets[row];
    });
    const databaseName = database?.url === undefined ? undefined : new URL(database.url).pathname.slice(1);
    const runs = new Map<RowName, RowRun[]>();
    const memorySampler = sampleRss(gatehouse?.gatehouse.child.process.pid);
    const tlsMemorySampler = sampleRss(tls?.gatehouse.child.process.pid);
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of targets) {
        if (round === 1 && settings.warmupSeconds > 0) {
          log(`${target.row}: warm-up ${settings.warmupSeconds} s`);
          const warmup = target.newConnections === true ? driveNewConnections(target, settings.warmupSeconds, settings.connections) : drive(target, settings.warmupSeconds, { connections: settings.connections });
          await failOnBadResponses(target, await warmup);
        }
        const eluBefore = performance.eventLoopUtilization();
        const before = sampleCpu();
        const measured: RunResult & { resumed?: number } =
          target.newConnections === true ? await driveNewConnections(target, settings.seconds, settings.connections) : await drive(target, settings.seconds, { connections: settings.connections });
        const after = sampleCpu();
        const elu = performance.eventLoopUtilization(eluBefore).utilization;
        await failOnBadResponses(target, measured);
        const run: RowRun = { ...measured, cores: coresBetween(before, after, target.pid(), databaseName, elu) };
        const { cores } = run;
        log(
          `${target.row} (round ${round}): ${run.tokensPerSecond.toFixed(0)} tokens/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, load ${run.loadAverage.toFixed(1)}; ` +
            `cores: server ${cores.server.toFixed(2)}, PostgreSQL ${cores.postgres.toFixed(2)}, load generator ${cores.loadGenerator.toFixed(2)} (busy ${Math.round(elu * 100)} %), ` +
            `other ${cores.other.toFixed(2)}, stolen ${cores.stolen.toFixed(2)}`,
        );
        runs.set(target.row, [...(runs.get(target.row) ?? []), run]);
      }
    }
    const memory = memorySampler.stop();
    const tlsMemory = tlsMemorySampler.stop();

    const rows: Report['rows'] = {};
    for (const target of targets) {
      const rounds = runs.get(target.row) ?? [];
      rows[target.row] = { ...median(rounds, (run) => run.tokensPerSecond), label: target.label, rounds };
    }
    const checks = [...buildChecks(rows, cryptoBound), ...rssCheck('bench:tokens rows', memory), ...rssCheck('bench:tokens HTTPS instance, rows tls, mtls and tls-resume', tlsMemory)];
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
      tlsMemory,
      dpop: settings.rows.includes('dpop') && gatehouse !== undefined ? { ...gatehouse.dpop.stats } : undefined,
      checks,
    };

    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/tokens-${stamp}.md and .json`);
    await writeBenchOutput({ title: 'Client credentials: plain, inner, nested, token exchange, DPoP, TLS and mTLS vs bare oidc-provider and the crypto bound', markdown: text, checks, data: report });

    if (gatehouse !== undefined) {
      const httpRows = settings.rows.filter((row) => !BARE_ROWS.includes(row) && !TLS_ROWS.includes(row));
      await writeProfileSummary(gatehouse.gatehouse, `Gatehouse CPU profile, rows ${httpRows.join(', ')}`, path.join(RESULTS_DIR, `tokens-${stamp}-profile.md`));
    }
    if (tls !== undefined) {
      const tlsRows = settings.rows.filter((row) => TLS_ROWS.includes(row));
      await writeProfileSummary(tls.gatehouse, `Gatehouse (HTTPS instance) CPU profile, rows ${tlsRows.join(', ')}`, path.join(RESULTS_DIR, `tokens-${stamp}-tls-profile.md`));
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
