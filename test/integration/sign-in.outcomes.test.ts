import { createUpstreams } from '../../src/federation/upstream.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import argon2 from 'argon2';
import { createPasswordHasher } from '../../src/accounts/passwords.js';
import { createPasskeys } from '../../src/accounts/passkeys.js';
import { createSecondFactor } from '../../src/accounts/second-factor.js';
import { createTotp } from '../../src/accounts/totp.js';
import { createClientSecretHasher } from '../../src/crypto/client-secret.js';
import { createEnvelope } from '../../src/crypto/envelope.js';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrator.js';
import { createUserStore } from '../../src/db/users.js';
import { createDeviceCookies } from '../../src/sign-in/device-cookies.js';
import { createSignIn, type SecondFactorAttempt, type SignIn, type SignInRequest } from '../../src/sign-in/index.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { totpCode } from '../support/totp.js';

/**
 * The sign-in flow without HTTP (SPEC §4): what a front door gets back from src/sign-in/ for each
 * case, and what the flow committed (audit events, throttle counters, code attempts, a rehash).
 * Real PostgreSQL, real argon2id, real TOTP codes from an independent generator.
 */

const PASSWORD = 'correct horse battery staple';

describe('sign-in outcomes', () => {
  let database: TestDatabase;
  let db: Database;
  let signIn: SignIn;
  let counted: string[];
  const passwords = createPasswordHasher();
  const deviceCookies = createDeviceCookies({ keys: [randomBytes(32)], secure: false });

  before(async () => {
    database = await createTestDatabase();
    db = await database.connect();
    await migrate(db);
    counted = [];
    signIn = createSignIn({
      db,
      passwords,
      secondFactor: createSecondFactor({
        db,
        envelope: createEnvelope(randomBytes(32)),
        totp: createTotp({ issuer: 'gatehouse.test' }),
        hasher: createClientSecretHasher(randomBytes(32)),
      }),
      // An issuer on an IP address: no passkeys (test/browser/passkeys.browser.test.ts has them).
      passkeys: createPasskeys({ db, issuer: 'http://127.0.0.1:9' }),
      deviceCookies,
      counters: { loginOutcomes: { inc: ({ outcome }) => counted.push(outcome) }, lockouts: { inc: () => counted.push('lockout') } },
      envelope: createEnvelope(randomBytes(32)),
      // No upstream is reached here: these tests sign in with passwords.
      upstreams: createUpstreams({ fetch: () => Promise.reject(new Error('no upstream in this test')), redirectUri: (id) => `http://127.0.0.1:9/federation/${id}/callback` }),
    });
  });
  after(async () => {
    await passwords.close();
    await db?.close();
    await database?.drop();
  });

  const users = () => createUserStore(db);
  async function person(username: string, options: { mfaRequired?: boolean; hash?: string } = {}) {
    const fields = { username, usernameNormalized: username, email: null, emailVerified: false, name: null, roles: [], disabled: false, mfaRequired: options.mfaRequired ?? false };
    const user = await users().insert(fields, options.hash ?? (await argon2.hash(PASSWORD, { type: argon2.argon2id })));
    assert.ok(user);
    return user;
  }
  const request = (ip: string, deviceCookie?: string): SignInRequest => ({ clientIp: ip, requestId: null, deviceCookie });
  const input = (username: string, password: string) => ({
    username,
    password,
    clientId: 'app',
    clientRequiresMfa: false,
    acrValues: undefined,
    interactionExpiresAt: Math.floor(Date.now() / 1000) + 600,
  });
  const audit = async (target: string) =>
    (await db.query<{ type: string; outcome: string }>('SELECT type, outcome FROM audit_events WHERE target = $1 ORDER BY id', [target])).rows.map((r) => `${r.type}:${r.outcome}`);
  const throttleRow = async (key: string) => (await db.query<{ failures: number }>('SELECT failures FROM login_throttle WHERE key = $1', [key])).rows[0]?.failures;

  test('a right password signs in: audited, failures forgotten, a device cookie issued, an outdated hash replaced', async () => {
    // argon2id with fewer passes than PASSWORD_PARAMS: needs a rehash.
    const user = await person('alice', { hash: await argon2.hash(PASSWORD, { type: argon2.argon2id, timeCost: 1, memoryCost: 8192 }) });
    assert.deepEqual(await signIn.password(input('alice', 'wrong password'), request('192.0.2.1')), { kind: 'refused' });
    assert.equal(await throttleRow('account:alice'), 1);

    const outcome = await signIn.password(input('Alice', PASSWORD), request('192.0.2.1'));
    assert.equal(outcome.kind, 'signed_in');
    assert.equal(outcome.accountId, user.id);
    assert.match(outcome.deviceCookie, /^gatehouse\.device=[^;]+; Path=\/interaction; /);
    const cookie = outcome.deviceCookie.split(';')[0]!.slice('gatehouse.device='.length);
    assert.ok(deviceCookies.nonceFor(cookie, 'alice'), 'the cookie names the account');
    assert.deepEqual(await audit(user.id), ['login.failure:failure', 'login.success:success']);
    assert.equal(await throttleRow('account:alice'), undefined, 'the failure is forgotten with the success');
    const rehashed = await users().findById(user.id);
    assert.notEqual(rehashed?.password_hash, user.password_hash);
    assert.ok(await argon2.verify(rehashed!.password_hash, PASSWORD));
  });

  test('an unknown username is refused like a wrong password, and five failures throttle it with a Retry-After', async () => {
    const outcomes = [];
    for (let i = 0; i < 6; i += 1) outcomes.push(await signIn.password(input('nobody', 'guess'), request('192.0.2.2')));
    assert.deepEqual(outcomes.slice(0, 5), Array(5).fill({ kind: 'refused' }));
    const last = outcomes[5]!;
    assert.equal(last.kind, 'throttled');
    assert.ok(last.retryAfter > 0 && last.retryAfter <= 30, `retryAfter ${last.retryAfter}`);
    assert.deepEqual(await audit('unknown'), [...Array(5).fill('login.failure:failure'), 'login.locked:failure']);
  });

  test('a person who must use a second factor gets an attempt; enrollment, wrong codes and the fifth try end as outcomes', async () => {
    const user = await person('bob', { mfaRequired: true });
    counted = [];
    const first = await signIn.password(input('bob', PASSWORD), request('192.0.2.3'));
    assert.equal(first.kind, 'second_factor_required');
    const attempt: SecondFactorAttempt = first.attempt;
    assert.deepEqual([attempt.accountId, attempt.username, attempt.subject], [user.id, 'bob', 'account:bob']);
    const open = await db.query('SELECT codes FROM sign_in_code_attempts WHERE attempt_id = $1', [attempt.attemptId]);
    assert.deepEqual(open.rows, [{ codes: 0 }]);
    assert.equal((await throttleRow('account:bob')) ?? 0, 0, 'the right password is no failure (taken back)');

    const prompt = await signIn.secondFactor.prompt(attempt);
    assert.equal(prompt.kind, 'enroll');
    assert.deepEqual(await signIn.secondFactor.submit(attempt, '000000', request('192.0.2.3')), { kind: 'refused', lastTry: false });
    const enrolled = await signIn.secondFactor.submit(attempt, totpCode(prompt.secret), request('192.0.2.3'));
    assert.equal(enrolled.kind, 'enrolled');
    assert.equal(enrolled.recoveryCodes.length, 10);
    assert.equal(enrolled.attempt.enrolled, true);
    assert.deepEqual(await signIn.secondFactor.submit(enrolled.attempt, '', request('192.0.2.3')), { kind: 'signed_in', accountId: user.id, deviceCookie: undefined, amr: ['otp'] });
    assert.deepEqual(counted, ['second_factor_failure', 'success']);

    // A new sign-in: the enrolled factor is asked for; five wrong codes end the attempt.
    const second = await signIn.password(input('bob', PASSWORD), request('192.0.2.3'));
    assert.equal(second.kind, 'second_factor_required');
    assert.deepEqual(await signIn.secondFactor.prompt(second.attempt), { kind: 'code', fewRecoveryCodes: undefined, passkey: false });
    const wrong = [];
    for (let i = 0; i < 5; i += 1) wrong.push(await signIn.secondFactor.submit(second.attempt, 'AAAAA-AAAAA', request('192.0.2.3')));
    assert.deepEqual(wrong.map((o) => (o.kind === 'refused' || o.kind === 'throttled' ? `${o.kind}:${o.lastTry}` : o.kind)), [
      'refused:false',
      'refused:false',
      'refused:false',
      'refused:false',
      'refused:true',
    ]);
    assert.deepEqual(await signIn.secondFactor.submit(second.attempt, enrolled.recoveryCodes[0]!, request('192.0.2.3')), { kind: 'no_tries_left' });
    const events = await audit(user.id);
    assert.deepEqual(events.filter((e) => e.startsWith('mfa.failure')).length, 6);
    assert.ok(events.includes('login.locked:failure'), 'the fifth wrong code locked the account');
  });
});
