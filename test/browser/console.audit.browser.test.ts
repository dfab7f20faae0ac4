/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §11, the console's audit area in Debian's Chromium: a gatehouse:audit person sees the
 * audit trail (their own sign-in first), filters it with the admin API's query rules (a bad
 * filter is a field error and a 400, never a 500), and pages back through it by keyset without
 * a row twice; a person without the role gets 403. axe-core and screenshots at 360 and 1280 px.
 */

const PASSWORD = 'correct horse battery staple';
const PAGING_TYPE = 'test.paging';
const PAGING_ROWS = 7;

describe('the admin console: audit events', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let auditorId: string;
  let auditor: { context: BrowserContext; page: Page };

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  /** The table's rows as [type, actor, target, outcome] and the row ids. */
  async function rows(page: Page): Promise<{ cells: string[][]; ids: string[] }> {
    const locator = page.locator('#events-heading ~ table tbody tr');
    const cells = await locator.evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1, 5).map((td) => td.textContent?.trim() ?? '')));
    const ids = await locator.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id') ?? ''));
    return { cells, ids };
  }

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, ALL_ADMIN_SCOPES);
    for (const [username, roles] of [
      ['auditor', ['gatehouse:audit']],
      ['keyholder', ['gatehouse:keys']],
    ] as const) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: [...roles] }, token);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      if (username === 'auditor') auditorId = (created.body as { id: string }).id;
    }
    for (let i = 1; i <= PAGING_ROWS; i += 1) {
      await server.db.query('INSERT INTO audit_events (type, actor, target, details) VALUES ($1, $2, $3, $4)', [PAGING_TYPE, 'seed', `row-${i}`, JSON.stringify({ n: i })]);
    }
    browser = await launchChromium();
    // bypassCSP only so the test can inject axe-core; the pages themselves run no script.
    const context = await browser.newContext({ bypassCSP: true });
    auditor = { context, page: await signIn(context, 'auditor') };
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('gatehouse:audit sees their own login.success, newest first, with the details as JSON', async () => {
    const { page } = auditor;
    await page.click('a:has-text("Audit events")');
    await page.waitForURL(`${server.issuer}/console/audit`);
    assert.equal(await page.title(), 'Audit events · Gatehouse');
    const { cells, ids } = await rows(page);
    assert.ok(
      cells.some(([type, , target, outcome]) => type === 'login.success' && target === auditorId && outcome === 'success'),
      JSON.stringify(cells),
    );
    const numeric = ids.map(BigInt);
    assert.deepEqual(numeric, [...numeric].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)), 'newest first');
    const seeded = page.locator('tr', { hasText: 'row-7' }).locator('details');
    await seeded.locator('summary').click();
    assert.equal((await seeded.locator('code').textContent())?.trim(), '{"n":7}');
    await assertAccessible(page, 'console audit events');
    await screenshots(page, 'console-audit');
  });

  test('filtering by type shows only that type, and the form keeps the filter', async () => {
    const { page } = auditor;
    await page.goto(`${server.issuer}/console/audit`);
    await page.fill('#type', 'login.success');
    await page.click('button:has-text("Show events")');
    await page.waitForURL(/\/console\/audit\?.*type=login\.success/);
    const { cells } = await rows(page);
    assert.ok(cells.length >= 1);
    assert.deepEqual(new Set(cells.map(([type]) => type)), new Set(['login.success']));
    assert.equal(await page.inputValue('#type'), 'login.success');
    // A datetime-local value (no seconds, no offset) is read as UTC.
    await page.fill('#since', '2000-01-01T00:00');
    await page.click('button:has-text("Show events")');
    await page.waitForURL(/since=2000-01-01T00%3A00(&|$)/);
    assert.ok((await rows(page)).cells.length >= 1);
    await page.fill('#since', '2999-01-01T00:00:00Z');
    await page.click('button:has-text("Show events")');
    await page.waitForSelector('text=No events match.');
  });

  test('an invalid since re-renders the form with the error next to the field (400)', async () => {
    const { page } = auditor;
    await page.goto(`${server.issuer}/console/audit`);
    await page.fill('#type', 'login.success');
    await page.fill('#since', 'last tuesday');
    const [response] = await Promise.all([page.waitForResponse((r) => r.url().startsWith(`${server.issuer}/console/audit?`)), page.click('button:has-text("Show events")')]);
    assert.equal(response.status(), 400);
    assert.match((await page.textContent('#since-error')) ?? '', /ISO 8601/);
    assert.equal(await page.getAttribute('#since', 'aria-invalid'), 'true');
    assert.match((await page.getAttribute('#since', 'aria-describedby')) ?? '', /since-error/);
    assert.equal(await page.inputValue('#since'), 'last tuesday');
    assert.equal(await page.inputValue('#type'), 'login.success');
    assert.equal(await page.locator('#type-error').count(), 0);
    await assertAccessible(page, 'console audit events, invalid filter');
    await screenshots(page, 'console-audit-invalid');

    // Other malformed queries are 400s too, never a 500.
    for (const query of ['limit=0', 'limit=abc', 'cursor=not-a-cursor', 'type=a&type=b', `type=${'x'.repeat(101)}`]) {
      const answer = await page.goto(`${server.issuer}/console/audit?${query}`);
      assert.equal(answer?.status(), 400, query);
      assert.equal(await page.locator('[role="alert"]').count(), 1, query);
    }
  });

  test('"Older events" pages back with the cursor and the filters, without a row twice', async () => {
    const { page } = auditor;
    await page.goto(`${server.issuer}/console/audit?type=${PAGING_TYPE}&limit=3`);
    const seen: string[] = [];
    const targets: string[] = [];
    for (;;) {
      const { cells, ids } = await rows(page);
      assert.ok(cells.length <= 3);
      assert.ok(cells.every(([type]) => type === PAGING_TYPE), JSON.stringify(cells));
      seen.push(...ids);
      targets.push(...cells.map(([, , target]) => target!));
      const older = page.locator('a:has-text("Older events")');
      if ((await older.count()) === 0) break;
      const href = new URL((await older.getAttribute('href'))!);
      assert.equal(href.searchParams.get('type'), PAGING_TYPE);
      assert.equal(href.searchParams.get('limit'), '3');
      assert.ok(href.searchParams.get('cursor'));
      await older.click();
      await page.waitForURL(/cursor=/);
      assert.equal(await page.inputValue('#type'), PAGING_TYPE, 'the filter survives paging');
    }
    assert.equal(new Set(seen).size, seen.length, 'no row twice');
    assert.deepEqual(targets, Array.from({ length: PAGING_ROWS }, (_, i) => `row-${PAGING_ROWS - i}`));
    await page.waitForSelector('text=No older events.');
  });

  test('a gatehouse:keys-only person gets 403 at the audit area', async () => {
    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'keyholder');
    const response = await page.goto(`${server.issuer}/console/audit`);
    assert.equal(response?.status(), 403);
    await page.waitForSelector('h1:has-text("No access")');
    await context.close();
  });

  test('without a console session the audit area sends the browser to sign in', async () => {
    const plain = await fetch(`${server.issuer}/console/audit`, { redirect: 'manual' });
    assert.equal(plain.status, 303);
    assert.equal(plain.headers.get('location'), `${server.issuer}/console/sign-in`);
  });
});
