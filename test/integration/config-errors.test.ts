import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
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
