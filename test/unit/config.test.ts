import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

// SPEC §1: configuration is validated at start. loadConfig itself, with no process or database
// (the started process's one-line refusals are test/integration/config-errors.test.ts).

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
