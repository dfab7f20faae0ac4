import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { RateLimitPolicy } from './http/rate-limit.js';

// The one reader of process.env. Everything else receives a Config (docs/configuration.md).

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

// Requests per second; fractions allowed (0.5 is one request every two seconds); 0 disables.
const ratePerSecond = z.coerce
  .number({ error: 'must be a number of requests per second' })
  .min(0, 'must be 0 (off) or more')
  .max(1_000_000, 'must be at most 1000000');
const burst = z.coerce.number({ error: 'must be a number of requests' }).int('must be a whole number').min(1, 'must be at least 1').max(10_000_000, 'must be at most 10000000').optional();

/*
 * Defaults sit above what a healthy client or the test suite ever asks: a ceiling, not a policy.
 * One process can serve more on a fast machine (3–12 k plain tokens/s on our 2-core VMs), so the
 * benches, which drive one instance flat out from one address, raise both (bench/support.ts).
 * Operators tighten them to what their clients need.
 */
const DEFAULT_TOKEN_RATE_PER_CLIENT = 5_000;
const DEFAULT_TOKEN_RATE_PER_IP = 10_000;
/*
 * Requests a minute per client IP to /auth, the hosted pages and end-session (SPEC §6). One
 * sign-in is about five of them, so this is ~60 sign-ins a minute from one address (a NAT of an
 * office), far above one person, and it caps what one address can store (interactions live 30 min).
 */
const DEFAULT_PAGE_RATE_PER_IP_PER_MINUTE = 300;

// Worker processes (src/cluster.ts); each holds its own database pool, so this bounds them too.
const MAX_WORKERS = 64;
const workerCount = z
  .string()
  .trim()
  .refine((value) => value === 'auto' || (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_WORKERS), `must be a whole number from 1 to ${MAX_WORKERS}, or auto`)
  .transform((value) => ({ auto: value === 'auto', count: value === 'auto' ? Math.min(MAX_WORKERS, availableParallelism()) : Number(value) }));

/** Unset burst: two seconds' worth, so a client may catch up after a short pause. */
function rateLimitPolicy(rate: number, burstSize: number | undefined): RateLimitPolicy {
  return { ratePerSecond: rate, burst: burstSize ?? Math.max(1, Math.ceil(2 * rate)) };
}

const MASTER_KEY_FORMAT = 'must be 32 bytes encoded as base64url (43 characters, e.g. from `openssl rand -base64 32 | tr "+/" "-_" | tr -d "="`)';
const isMasterKey = (value: string) => /^[A-Za-z0-9_-]+$/.test(value) && Buffer.from(value, 'base64url').length === 32;

const environmentSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test'], { error: 'must be development, production or test' }).default('development'),
    PORT: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(0, 'must be between 0 and 65535')
      .max(65535, 'must be between 0 and 65535')
      .default(3000),
    HOST: z.string().trim().min(1, 'must not be empty').default('0.0.0.0'),
    // /healthz, /readyz and /metrics on a second listener (src/http/ops-routes.ts, managementRoutes); 0 turns it off.
    MANAGEMENT_PORT: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(0, 'must be between 0 (off) and 65535')
      .max(65535, 'must be between 0 (off) and 65535')
      .default(9000),
    ISSUER: z
      .url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' })
      .refine((value) => {
        // zod runs this even when the URL check above failed; that check reports the bad value.
        if (!URL.canParse(value)) return true;
        const url = new URL(value);
        return url.search === '' && url.hash === '';
      }, 'must not contain a query or fragment')
      .transform((value) => value.replace(/\/+$/, ''))
      .optional(),
    DATABASE_URL: z
      .string()
      .trim()
      .refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL')
      .optional(),
    DATA_DIR: z.string().trim().min(1, 'must not be empty').default('./data'),
    MASTER_KEY: z.string().trim().refine(isMasterKey, MASTER_KEY_FORMAT).optional(),
    // Earlier master keys, still able to open what they sealed until `master-key rewrap` has run.
    MASTER_KEY_PREVIOUS: z
      .string()
      .transform((value) => value.split(',').map((key) => key.trim()))
      .refine((keys) => keys.every(isMasterKey), `must be a comma-separated list of keys, each ${MASTER_KEY_FORMAT}`)
      .optional(),
    BOOTSTRAP_ADMIN_CLIENT_ID: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9._~-]{1,128}$/, 'must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -')
      .optional(),
    // Operators choose this one, so it must be as strong as a generated secret (≥ 256 bits of base64url).
    BOOTSTRAP_ADMIN_CLIENT_SECRET: z.string().min(43, 'must be at least 43 characters (256 bits of base64url)').optional(),
    TRUST_PROXY: booleanFlag.default(false),
    // SPEC §8: Gatehouse serves HTTPS itself with these (re-read on SIGHUP).
    TLS_CERT_FILE: z.string().trim().min(1).optional(),
    TLS_KEY_FILE: z.string().trim().min(1).optional(),
    // CAs a client certificate must chain to (tls_client_auth); with TLS, one is asked for (optional).
    TLS_CLIENT_CA_FILE: z.string().trim().min(1).optional(),
    // Behind a TLS-terminating proxy: the request header the proxy puts the client certificate in.
    CLIENT_CERT_HEADER: z
      .string()
      .trim()
      .toLowerCase()
      .regex(/^[a-z0-9-]{1,64}$/, 'must be a header name (letters, digits and -)')
      .optional(),
    LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    SHUTDOWN_TIMEOUT_MS: z.coerce.number({ error: 'must be a number' }).int().min(0).max(600_000).default(10_000),
    AUDIT_RETENTION_DAYS: z.coerce.number({ error: 'must be a number of days' }).int('must be whole days').min(1, 'must be at least 1').max(36_500).default(90),
    KEY_REFRESH_INTERVAL_MS: z.coerce.number({ error: 'must be a number' }).int().min(100, 'must be at least 100').max(60_000, 'must be at most 60000').default(2_000),
    TOKEN_RATE_LIMIT_PER_CLIENT: ratePerSecond.default(DEFAULT_TOKEN_RATE_PER_CLIENT),
    TOKEN_RATE_LIMIT_PER_CLIENT_BURST: burst,
    TOKEN_RATE_LIMIT_PER_IP: ratePerSecond.default(DEFAULT_TOKEN_RATE_PER_IP),
    TOKEN_RATE_LIMIT_PER_IP_BURST: burst,
    AUTH_RATE_LIMIT_PER_IP: z.coerce
      .number({ error: 'must be a number of requests per minute' })
      .int('must be a whole number')
      .min(0, 'must be 0 (off) or more')
      .max(1_000_000, 'must be at most 1000000')
      .default(DEFAULT_PAGE_RATE_PER_IP_PER_MINUTE),
    WORKERS: workerCount.optional(),
    ALLOW_PRIVATE_JWKS_URI: booleanFlag.default(false),
    CRYPTO_THREADS: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0).max(16, 'must be at most 16').default(1),
  })
  .superRefine((env, ctx) => {
    if ((env.BOOTSTRAP_ADMIN_CLIENT_ID === undefined) !== (env.BOOTSTRAP_ADMIN_CLIENT_SECRET === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.BOOTSTRAP_ADMIN_CLIENT_ID === undefined ? 'BOOTSTRAP_ADMIN_CLIENT_ID' : 'BOOTSTRAP_ADMIN_CLIENT_SECRET'],
        message: 'must be set together with its pair (BOOTSTRAP_ADMIN_CLIENT_ID and BOOTSTRAP_ADMIN_CLIENT_SECRET)',
      });
    }
    // PGlite is one process's database (a pid lock on DATA_DIR says so); `auto` counts too, so the
    // same settings do not start on one machine and fail on a bigger one.
    if (env.WORKERS !== undefined && (env.WORKERS.auto || env.WORKERS.count > 1) && env.DATABASE_URL === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['WORKERS'],
        message: 'must be 1 when DATABASE_URL is unset: embedded PGlite serves one process; set DATABASE_URL (PostgreSQL) to run several',
      });
    }
    if (env.MANAGEMENT_PORT !== 0 && env.MANAGEMENT_PORT === env.PORT) {
      ctx.addIssue({ code: 'custom', path: ['MANAGEMENT_PORT'], message: 'must differ from PORT (or be 0 to turn the management listener off)' });
    }
    if ((env.TLS_CERT_FILE === undefined) !== (env.TLS_KEY_FILE === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.TLS_CERT_FILE === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'],
        message: 'must be set together with its pair (TLS_CERT_FILE and TLS_KEY_FILE)',
      });
    }
    // A client-sent header must never pass for a certificate: only a proxy Gatehouse trusts sets it.
    if (env.CLIENT_CERT_HEADER !== undefined && !env.TRUST_PROXY) {
      ctx.addIssue({ code: 'custom', path: ['CLIENT_CERT_HEADER'], message: 'needs TRUST_PROXY=true: only a trusted proxy may tell Gatehouse the client certificate' });
    }
    if (env.CLIENT_CERT_HEADER !== undefined && env.TLS_CERT_FILE !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['CLIENT_CERT_HEADER'], message: 'must not be set when Gatehouse serves TLS itself (TLS_CERT_FILE): the certificate comes from the connection' });
    }
    if (env.TLS_CLIENT_CA_FILE !== undefined && env.TLS_CERT_FILE === undefined && env.CLIENT_CERT_HEADER === undefined) {
      ctx.addIssue({ code: 'custom', path: ['TLS_CLIENT_CA_FILE'], message: 'needs TLS_CERT_FILE (Gatehouse serves TLS) or CLIENT_CERT_HEADER (a proxy passes the certificate)' });
    }
    if (env.NODE_ENV === 'production') {
      if (env.ISSUER === undefined || !env.ISSUER.startsWith('https://')) {
        ctx.addIssue({ code: 'custom', path: ['ISSUER'], message: 'must be an https:// URL when NODE_ENV=production' });
      } else if (!env.TRUST_PROXY && env.TLS_CERT_FILE === undefined && env.TLS_KEY_FILE === undefined) {
        // An https issuer served as plain HTTP with nothing said about who terminates TLS: either
        // nobody does, or a proxy does and the client-IP limits see only its address. (Half a
        // TLS pair is reported above, once.)
        ctx.addIssue({
          code: 'custom',
          path: ['TRUST_PROXY'],
          message: 'must be true when NODE_ENV=production and ISSUER is https:// (a TLS-terminating proxy in front), unless Gatehouse serves TLS itself (TLS_CERT_FILE and TLS_KEY_FILE)',
        });
      }
      if (env.MASTER_KEY === undefined) {
        ctx.addIssue({ code: 'custom', path: ['MASTER_KEY'], message: 'is required when NODE_ENV=production' });
      }
    }
  });

export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  /** The management listener's port (/healthz, /readyz, /metrics) on `host`; undefined when off. */
  readonly managementPort: number | undefined;
  readonly issuer: string;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /** Raw 32-byte key, or undefined in development (then one is generated into dataDir). */
  readonly masterKey: Buffer | undefined;
  /** Earlier master keys: values they sealed still open; nothing is sealed with them. */
  readonly masterKeyPrevious: readonly Buffer[];
  readonly bootstrapAdmin: { readonly clientId: string; readonly clientSecret: string } | undefined;
  readonly trustProxy: boolean;
  /** Set when Gatehouse serves TLS itself (both files; re-read on SIGHUP). */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** PEM file of the CAs client certificates must chain to (tls_client_auth). */
  readonly tlsClientCaFile: string | undefined;
  /** Lower-case header name a trusted proxy puts the client certificate in (SPEC §8). */
  readonly clientCertHeader: string | undefined;
  readonly logLevel: LogLevel;
  readonly shutdownTimeoutMs: number;
  /** How often each instance checks for rotated signing keys. */
  readonly keyRefreshIntervalMs: number;
  /** Audit events older than this are pruned by the background job. */
  readonly auditRetentionDays: number;
  /**
   * Per process (each WORKERS worker is one), in memory (src/http/rate-limit.ts says why): token
   * requests per authenticated client, and POSTs to the token, introspection, revocation and PAR
   * endpoints per client IP.
   * A rate of 0 disables that limit.
   */
  readonly tokenRateLimits: { readonly perClient: RateLimitPolicy; readonly perIp: RateLimitPolicy };
  /**
   * Requests a minute per client IP to the authorization endpoint, the hosted pages and
   * end-session, counted in the database (shared by every instance); 0 disables.
   */
  readonly pageRateLimitPerMinute: number;
  /** Processes serving requests: 1 is this process alone; more forks that many (src/cluster.ts). */
  readonly workers: number;
  /** Worker threads per process for the inner layer's ECDH (src/tokens/crypto-pool.ts); 0 keeps it on the event loop. */
  readonly cryptoThreads: number;
  /** Client `jwks_uri` on loopback, private or link-local addresses (development, tests); refused otherwise (SPEC §2). */
  readonly allowPrivateJwksUri: boolean;
}

export class ConfigError extends Error {
  readonly code = 'config_invalid' as const;
  /** One line per problem, each naming the variable. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Environment = Readonly<Record<string, string | undefined>>;

/** Empty strings count as unset, as most deployment tools write them for "not configured". */
function withoutEmpty(env: Environment): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

export function loadConfig(env: Environment = process.env): Config {
  const parsed = environmentSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const variable = issue.path.join('.') || 'environment';
      const value = env[variable];
      const hint = value === undefined ? '' : ` (got ${describeValue(variable, value)})`;
      return `${variable} ${issue.message}${hint}`;
    });
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    managementPort: e.MANAGEMENT_PORT === 0 ? undefined : e.MANAGEMENT_PORT,
    issuer: e.ISSUER ?? `http://localhost:${e.PORT}`,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.DATA_DIR),
    masterKey: e.MASTER_KEY === undefined ? undefined : Buffer.from(e.MASTER_KEY, 'base64url'),
    masterKeyPrevious: (e.MASTER_KEY_PREVIOUS ?? []).map((key) => Buffer.from(key, 'base64url')),
    bootstrapAdmin:
      e.BOOTSTRAP_ADMIN_CLIENT_ID !== undefined && e.BOOTSTRAP_ADMIN_CLIENT_SECRET !== undefined
        ? { clientId: e.BOOTSTRAP_ADMIN_CLIENT_ID, clientSecret: e.BOOTSTRAP_ADMIN_CLIENT_SECRET }
        : undefined,
    trustProxy: e.TRUST_PROXY,
    tls: e.TLS_CERT_FILE !== undefined && e.TLS_KEY_FILE !== undefined ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE } : undefined,
    tlsClientCaFile: e.TLS_CLIENT_CA_FILE,
    clientCertHeader: e.CLIENT_CERT_HEADER,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    keyRefreshIntervalMs: e.KEY_REFRESH_INTERVAL_MS,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    tokenRateLimits: {
      perClient: rateLimitPolicy(e.TOKEN_RATE_LIMIT_PER_CLIENT, e.TOKEN_RATE_LIMIT_PER_CLIENT_BURST),
      perIp: rateLimitPolicy(e.TOKEN_RATE_LIMIT_PER_IP, e.TOKEN_RATE_LIMIT_PER_IP_BURST),
    },
    pageRateLimitPerMinute: e.AUTH_RATE_LIMIT_PER_IP,
    workers: e.WORKERS?.count ?? 1,
    cryptoThreads: e.CRYPTO_THREADS,
    allowPrivateJwksUri: e.ALLOW_PRIVATE_JWKS_URI,
  };
}

/**
 * The password `gatehouse users create` sets, when given in the environment rather than on stdin.
 * The CLI's alone (the server never reads it); empty counts as unset, as for every variable.
 */
export function cliPassword(env: Environment = process.env): string | undefined {
  const value = env['GATEHOUSE_PASSWORD'];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The upstream client secret `gatehouse identity-providers create|update` seals, when given in the
 * environment rather than on stdin. The CLI's alone, like GATEHOUSE_PASSWORD.
 */
export function cliClientSecret(env: Environment = process.env): string | undefined {
  const value = env['GATEHOUSE_CLIENT_SECRET'];
  return value === undefined || value === '' ? undefined : value;
}

/** Never echo secrets back, even into an error line. */
function describeValue(variable: string, value: string): string {
  if (/SECRET|KEY|DATABASE_URL/.test(variable)) return `${value.length} characters`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}
