import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { spawnGatehouse } from '../support/process.js';

// SPEC §1: configuration is validated at start; a bad value stops the process with one clear
// line naming the variable.

let scratch: string;

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'gatehouse-config-'));
});
after(() => rm(scratch, { recursive: true, force: true }));

interface Outcome {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs src/main.ts with `env`; a scratch DATA_DIR and port 0 keep a wrongly accepted config harmless. */
async function start(env: Record<string, string>): Promise<Outcome> {
  const gatehouse = spawnGatehouse({ DATA_DIR: scratch, PORT: '0', HOST: '127.0.0.1', ...env });
  const timer = setTimeout(() => gatehouse.kill('SIGKILL'), 20_000);
  try {
    const code = await gatehouse.exited;
    return { code, ...gatehouse.output };
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts exit code 1 and exactly one stderr line per expected variable, in any order. */
function assertRejected(outcome: Outcome, variables: readonly string[]): string[] {
  assert.equal(outcome.code, 1, `exit code (stderr: ${outcome.stderr})`);
  const lines = outcome.stderr.split('\n').filter((line) => line.trim() !== '');
  assert.equal(lines.length, variables.length, `one line per problem, got:\n${outcome.stderr}`);
  for (const variable of variables) {
    const naming = lines.filter((line) => line.startsWith(`gatehouse: invalid configuration: ${variable} `));
    assert.equal(naming.length, 1, `one line names ${variable}, got:\n${outcome.stderr}`);
  }
  assert.doesNotMatch(outcome.stdout, /gatehouse listening/);
  return lines;
}

describe('a bad environment stops the process with one line per problem', { concurrency: true }, () => {
  test('PORT that is not a number', async () => {
    const [line] = assertRejected(await start({ PORT: 'abc' }), ['PORT']);
    assert.match(line ?? '', /"abc"/, 'the offending value is shown for non-secret variables');
  });

  test('ISSUER that is not a URL', async () => {
    assertRejected(await start({ ISSUER: 'not-a-url' }), ['ISSUER']);
  });

  test('production with an http issuer and no MASTER_KEY reports both', async () => {
    const lines = assertRejected(await start({ NODE_ENV: 'production', ISSUER: 'http://x.example' }), ['ISSUER', 'MASTER_KEY']);
    assert.ok(lines.some((line) => /ISSUER .*https/.test(line)));
  });

  test('production with an https issuer served as plain HTTP and no proxy trusted', async () => {
    // Nothing terminates TLS for the issuer clients are told to use: refused, naming TRUST_PROXY.
    const outcome = await start({ NODE_ENV: 'production', ISSUER: 'https://id.example.com', MASTER_KEY: randomBytes(32).toString('base64url') });
    const [line] = assertRejected(outcome, ['TRUST_PROXY']);
    assert.match(line ?? '', /TRUST_PROXY must be true .*TLS_CERT_FILE and TLS_KEY_FILE/);
  });

  test('MANAGEMENT_PORT that is not a port', async () => {
    assertRejected(await start({ MANAGEMENT_PORT: '70000' }), ['MANAGEMENT_PORT']);
  });

  test('a MASTER_KEY that is too short is rejected without echoing it', async () => {
    const badKey = randomBytes(16).toString('base64url');
    const outcome = await start({ MASTER_KEY: badKey });
    assertRejected(outcome, ['MASTER_KEY']);
    assert.ok(!outcome.stderr.includes(badKey) && !outcome.stdout.includes(badKey), 'the key value is not echoed');
  });

  test('BOOTSTRAP_ADMIN_CLIENT_ID without its secret', async () => {
    assertRejected(await start({ BOOTSTRAP_ADMIN_CLIENT_ID: 'ops-admin' }), ['BOOTSTRAP_ADMIN_CLIENT_SECRET']);
  });

  test('LOG_LEVEL that pino does not know', async () => {
    assertRejected(await start({ LOG_LEVEL: 'loud' }), ['LOG_LEVEL']);
  });
});

describe('loadConfig', () => {
  test('defaults: port 3000, issuer on localhost, absolute data dir', () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.issuer, 'http://localhost:3000');
    assert.equal(config.env, 'development');
    assert.ok(path.isAbsolute(config.dataDir));
    assert.equal(config.dataDir, path.resolve('data'));
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.masterKey, undefined);
    assert.equal(config.bootstrapAdmin, undefined);
    assert.equal(config.trustProxy, false);
    assert.equal(config.logLevel, 'info');
  });

  test('the default issuer follows PORT', () => {
    assert.equal(loadConfig({ PORT: '8080' }).issuer, 'http://localhost:8080');
  });

  test('a trailing slash is stripped from ISSUER', () => {
    assert.equal(loadConfig({ ISSUER: 'https://id.example.com/' }).issuer, 'https://id.example.com');
    assert.equal(loadConfig({ ISSUER: 'https://id.example.com/tenant/' }).issuer, 'https://id.example.com/tenant');
  });

  test('TRUST_PROXY accepts true/false spellings and rejects anything else', () => {
    for (const value of ['true', '1', 'yes']) assert.equal(loadConfig({ TRUST_PROXY: value }).trustProxy, true, value);
    for (const value of ['false', '0', 'no']) assert.equal(loadConfig({ TRUST_PROXY: value }).trustProxy, false, value);
    assert.throws(
      () => loadConfig({ TRUST_PROXY: 'maybe' }),
      (error: unknown) => error instanceof ConfigError && error.problems.length === 1 && error.problems[0]?.startsWith('TRUST_PROXY ') === true,
    );
  });

  test('AUTH_RATE_LIMIT_PER_IP: 300 a minute by default, 0 disables, anything but a whole number >= 0 is refused', () => {
    assert.equal(loadConfig({}).pageRateLimitPerMinute, 300);
    assert.equal(loadConfig({ AUTH_RATE_LIMIT_PER_IP: '0' }).pageRateLimitPerMinute, 0);
    assert.equal(loadConfig({ AUTH_RATE_LIMIT_PER_IP: '60' }).pageRateLimitPerMinute, 60);
    for (const value of ['-1', '1.5', 'lots']) {
      assert.throws(
        () => loadConfig({ AUTH_RATE_LIMIT_PER_IP: value }),
        (error: unknown) => error instanceof ConfigError && error.problems.length === 1 && error.problems[0]?.startsWith('AUTH_RATE_LIMIT_PER_IP ') === true,
        value,
      );
    }
  });

  test('empty strings count as unset', () => {
    const config = loadConfig({ PORT: '', ISSUER: '', DATABASE_URL: '', MASTER_KEY: '', BOOTSTRAP_ADMIN_CLIENT_ID: '', TRUST_PROXY: '', LOG_LEVEL: '' });
    assert.equal(config.port, 3000);
    assert.equal(config.issuer, 'http://localhost:3000');
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.masterKey, undefined);
    assert.equal(config.bootstrapAdmin, undefined);
    assert.equal(config.trustProxy, false);
    assert.equal(config.logLevel, 'info');
  });

  test('an empty MASTER_KEY in production is "required", not "malformed"', () => {
    assert.throws(
      () => loadConfig({ NODE_ENV: 'production', ISSUER: 'https://id.example.com', TRUST_PROXY: 'true', MASTER_KEY: '' }),
      (error: unknown) => error instanceof ConfigError && error.problems.length === 1 && /^MASTER_KEY is required/.test(error.problems[0] ?? ''),
    );
  });

  test('a valid production configuration loads', () => {
    const key = randomBytes(32);
    const config = loadConfig({ NODE_ENV: 'production', ISSUER: 'https://id.example.com', TRUST_PROXY: 'true', MASTER_KEY: key.toString('base64url') });
    assert.equal(config.env, 'production');
    assert.deepEqual(config.masterKey, key);
  });

  test('production with an https issuer needs TRUST_PROXY=true or TLS served by Gatehouse (SPEC §1)', () => {
    const production = { NODE_ENV: 'production', ISSUER: 'https://id.example.com', MASTER_KEY: randomBytes(32).toString('base64url') };
    const refusedFor = (env: Record<string, string>, variable: string) =>
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && error.problems.length === 1 && error.problems[0]?.startsWith(`${variable} `) === true,
        JSON.stringify(env),
      );
    refusedFor(production, 'TRUST_PROXY');
    refusedFor({ ...production, TRUST_PROXY: 'false' }, 'TRUST_PROXY');
    // Half a certificate is no TLS.
    refusedFor({ ...production, TLS_CERT_FILE: '/etc/gatehouse/cert.pem' }, 'TLS_KEY_FILE');
    refusedFor({ ...production, TLS_KEY_FILE: '/etc/gatehouse/key.pem' }, 'TLS_CERT_FILE');
    assert.equal(loadConfig({ ...production, TRUST_PROXY: 'true' }).trustProxy, true);
    assert.deepEqual(loadConfig({ ...production, TLS_CERT_FILE: '/etc/gatehouse/cert.pem', TLS_KEY_FILE: '/etc/gatehouse/key.pem' }).tls, {
      certFile: '/etc/gatehouse/cert.pem',
      keyFile: '/etc/gatehouse/key.pem',
    });
    // Outside production, development over plain http on localhost stays as it is.
    assert.equal(loadConfig({ ISSUER: 'https://id.example.com' }).trustProxy, false);
  });

  test('MANAGEMENT_PORT: 9000 by default, 0 turns it off, never the public PORT', () => {
    assert.equal(loadConfig({}).managementPort, 9000);
    assert.equal(loadConfig({ MANAGEMENT_PORT: '0' }).managementPort, undefined);
    assert.equal(loadConfig({ MANAGEMENT_PORT: '9100' }).managementPort, 9100);
    for (const env of [{ MANAGEMENT_PORT: '3000' }, { PORT: '9000' }, { MANAGEMENT_PORT: '-1' }, { MANAGEMENT_PORT: 'metrics' }]) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && error.problems.length === 1 && error.problems[0]?.startsWith('MANAGEMENT_PORT ') === true,
        JSON.stringify(env),
      );
    }
  });
});
