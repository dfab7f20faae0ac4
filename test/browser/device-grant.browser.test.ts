/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { freezeClock, type FrozenClock } from '../support/clock.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { totpCode } from '../support/totp.js';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const PASSWORD = 'correct horse battery staple';
const PYTHON = '/usr/bin/python3';
const CLIENT_SCRIPT = fileURLToPath(new URL('../fixtures/device_client.py', import.meta.url));
const SCOPE = 'openid profile';

/** For `describe(..., { skip })`: Debian's python3-oauthlib and python3-requests, which .ci/run installs. */
function pythonMissing(): string | false {
  const probe = spawnSync(PYTHON, ['-I', '-c', 'import oauthlib.oauth2, requests']);
  return probe.status === 0 ? false : `${PYTHON} with python3-oauthlib and python3-requests not installed (.ci/run installs them)`;
}

interface ToolEvent extends Record<string, unknown> {
  event: 'authorization' | 'poll' | 'tokens' | 'refused';
}

/** The Python device client as a person's terminal would run it: its printed lines, and its exit. */
function startDeviceTool(issuer: string, clientId: string, eagerPolls = 0) {
  const child = spawn(PYTHON, ['-I', CLIENT_SCRIPT, '--issuer', issuer, '--client-id', clientId, '--scope', SCOPE, '--eager-polls', String(eagerPolls)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: ToolEvent[] = [];
  const waiting: { kind: ToolEvent['event']; resolve: (event: ToolEvent) => void }[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const event = JSON.parse(line) as ToolEvent;
    events.push(event);
    for (const waiter of waiting.filter((w) => w.kind === event.event)) {
      waiting.splice(waiting.indexOf(waiter), 1);
      waiter.resolve(event);
    }
  });
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
  return {
    events,
    /** The first event of this kind (already printed, or the next one). */
    first(kind: ToolEvent['event']): Promise<ToolEvent> {
      const seen = events.find((event) => event.event === kind);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<ToolEvent>((resolve, reject) => {
        waiting.push({ kind, resolve });
        void exited.then((code) => reject(new Error(`the device client exited (${code}) before "${kind}": ${stderr}${JSON.stringify(events)}`)));
      });
    },
    exited,
    stop: () => child.kill(),
  };
}

describe('device grant: Python oauthlib polls while a person enters the code in Chromium', { skip: chromiumMissing || pythonMissing() }, () => {
  let clock: FrozenClock;
  let server: TestServer;
  let browser: Browser;
  let clientId: string;
  let userId: string;
  let secret: string;

  async function newContext(): Promise<BrowserContext> {
    // bypassCSP only so the test can inject axe-core; the device pages themselves run no script.
    return browser.newContext({ bypassCSP: true });
  }

  async function password(page: Page): Promise<void> {
    await page.waitForSelector('h1:has-text("Sign in")');
    await page.fill('#username', 'carol');
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
  }

  before(async () => {
    clock = freezeClock();
    server = await startTestServer();
    const token = await adminToken(server, 'admin:clients admin:users');
    const client = await adminCall<{ client_id: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Deploy CLI', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: SCOPE },
      token,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    clientId = client.body.client_id;
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'carol', password: PASSWORD, mfa_required: true }, token);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    clock?.restore();
  });

  test('the tool shows a code; the person types it, checks the device, signs in with a password and a new TOTP, consents; the tool gets tokens', async () => {
    // A careless start (two polls at once) gets slow_down, and the tool backs off as RFC 8628 says.
    const tool = startDeviceTool(server.issuer, clientId, 2);
    try {
      const shown = await tool.first('authorization');
      assert.equal(shown['verification_uri'], `${server.issuer}/device`);
      assert.equal(shown['interval'], 5);

      const context = await newContext();
      const page = await context.newPage();
      const entry = await page.goto(String(shown['verification_uri']));
      await page.waitForSelector('h1:has-text("Connect a device")');
      assert.equal(await page.title(), 'Connect a device · Gatehouse');
      assert.equal(await page.locator('script').count(), 0);
      assert.match(entry?.headers()['content-security-policy'] ?? '', /script-src 'none'/);
      await assertAccessible(page, 'code entry page');
      await screenshots(page, 'device-code');
      // As a person types it off a terminal: lower case, without the dash.
      await page.fill('#user_code', String(shown['user_code']).replace('-', '').toLowerCase());
      await page.press('#user_code', 'Enter');

      await page.waitForSelector('h1:has-text("Is this your device?")');
      assert.equal(await page.textContent('#confirm-user-code'), shown['user_code']);
      assert.equal(await page.textContent('#device-address'), '127.0.0.1');
      assert.match((await page.textContent('#device-agent')) ?? '', /^python-requests\//);
      assert.match((await page.textContent('main')) ?? '', /Deploy CLI wants to sign in on a device/);
      await assertAccessible(page, 'device confirmation page');
      await screenshots(page, 'device-confirm');
      await page.click('button:has-text("Continue and sign in")');

      await password(page);
      await page.waitForSelector('h1:has-text("Set up two-step verification")');
      const uri = await page.getAttribute('a[href^="otpauth://"]', 'href');
      secret = new URL(uri!).searchParams.get('secret')!;
      await page.fill('#code', totpCode(secret, clock.now()));
      await page.press('#code', 'Enter');
      await page.waitForSelector('h1:has-text("Save your recovery codes")');
      await page.click('button:has-text("I have saved them")');
      await page.waitForSelector('h1:has-text("Allow access?")');
      await page.click('button:has-text("Allow")');

      await page.waitForSelector('h1:has-text("Device connected")');
      assert.match((await page.textContent('main')) ?? '', /You are signed in to Deploy CLI on your device/);
      await assertAccessible(page, 'device connected page');
      await screenshots(page, 'device-connected');

      const tokens = await tool.first('tokens');
      assert.equal(await tool.exited, 0);
      const polls = tool.events.filter((event) => event.event === 'poll');
      assert.ok(polls.some((event) => event['error'] === 'slow_down'), JSON.stringify(polls));
      assert.ok(polls.every((event) => event['error'] === 'authorization_pending' || event['error'] === 'slow_down'));

      // The ID token verifies with an independent JOSE library against the published keys, for carol, with her second factor.
      const jwks = createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
      const { payload } = await jwtVerify(String(tokens['id_token']), jwks, { issuer: server.issuer, audience: clientId, currentDate: new Date(clock.now()) });
      assert.equal(payload.sub, userId);
      assert.deepEqual(payload['amr'], ['pwd', 'otp']);
      const userinfo = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${String(tokens['access_token'])}` } });
      assert.equal(userinfo.status, 200);
      assert.equal(((await userinfo.json()) as { sub: string }).sub, userId);
      await context.close();
    } finally {
      tool.stop();
    }
  });

  test('verification_uri_complete: the code arrives filled in, the person confirms it, signs in with TOTP and consents', async () => {
    assert.ok(secret, 'the first test enrolled carol');
    clock.advanceSteps(); // a new TOTP step: the first test's code cannot be replayed
    const tool = startDeviceTool(server.issuer, clientId);
    try {
      const shown = await tool.first('authorization');
      const context = await newContext();
      const page = await context.newPage();
      await page.goto(String(shown['verification_uri_complete']));
      // RFC 8628 §3.3.1: the code is not typed, but the person still confirms it matches.
      await page.waitForSelector('h1:has-text("Is this your device?")');
      assert.equal(await page.textContent('#confirm-user-code'), shown['user_code']);
      await page.click('button:has-text("Continue and sign in")');
      await password(page);
      await page.waitForSelector('h1:has-text("Two-step verification")');
      await page.fill('#code', totpCode(secret, clock.now()));
      await page.press('#code', 'Enter');
      await page.waitForSelector('h1:has-text("Allow access?")');
      await page.click('button:has-text("Allow")');
      await page.waitForSelector('h1:has-text("Device connected")');
      const tokens = await tool.first('tokens');
      assert.equal(await tool.exited, 0);
      assert.ok(tokens['access_token']);
      await context.close();
    } finally {
      tool.stop();
    }
  });

  test('a wrong code is said so and kept for correcting; denying stops the tool with access_denied', async () => {
    const tool = startDeviceTool(server.issuer, clientId);
    try {
      const shown = await tool.first('authorization');
      const context = await newContext();
      const page = await context.newPage();
      await page.goto(`${server.issuer}/device`);
      await page.fill('#user_code', 'BBBB-BBBB');
      await page.press('#user_code', 'Enter');
      await page.waitForSelector('[role="alert"]');
      assert.match((await page.textContent('[role="alert"]')) ?? '', /That code is not right/);
      assert.equal(await page.inputValue('#user_code'), 'BBBB-BBBB');
      assert.equal(await page.getAttribute('#user_code', 'aria-invalid'), 'true');
      await assertAccessible(page, 'code entry page with an error');
      await page.fill('#user_code', String(shown['user_code']));
      await page.press('#user_code', 'Enter');
      await page.waitForSelector('h1:has-text("Is this your device?")');
      await page.click('button:has-text("Deny")');
      await page.waitForSelector('h1:has-text("Device not connected")');
      const refused = await tool.first('refused');
      assert.equal(refused['error'], 'access_denied');
      assert.equal(await tool.exited, 3);
      await context.close();
    } finally {
      tool.stop();
    }
  });
});
