/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { adminCall, adminToken, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { commandAvailable } from '../support/gateway.js';
import { nginxArgs, privateNginxConfig } from '../support/nginx.js';
import { freePort, startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §11 "works with an ISSUER that has a path", as a deployment runs it: Debian's nginx
 * publishes Gatehouse under `/auth` (stripping the path, passing Host and X-Forwarded-*, with
 * TRUST_PROXY=true) and the browser reaches Gatehouse only through it. A gatehouse:admin signs
 * in (password, TOTP enrollment), and every stylesheet, script, link, form action, redirect and
 * cookie stays under `/auth`; a resource server is created through the form; the copy button
 * shows (console.js ran under the real CSP); sign-out goes to `/auth/session/end`.
 */

const nginxAvailable = await commandAvailable('nginx', ['-v']);
const PASSWORD = 'correct horse battery staple';
const PREFIX = '/auth';

describe('the admin console behind nginx, under ISSUER http://127.0.0.1:<port>/auth', { skip: chromiumMissing || (nginxAvailable ? false : 'needs nginx (nginx-light; .ci/run installs it)') }, () => {
  let server: TestServer;
  let browser: Browser;
  let nginx: ChildProcess | undefined;
  let nginxLog = '';
  let dir: string | undefined;
  let issuer: string;

  before(async () => {
    const nginxPort = await freePort();
    issuer = `http://127.0.0.1:${nginxPort}${PREFIX}`;
    // What a deployment behind a proxy sets: the public issuer, and trust in the proxy's X-Forwarded-*.
    server = await startTestServer({ env: { ISSUER: issuer, TRUST_PROXY: 'true' } });
    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-console-nginx-'));
    await writeFile(
      path.join(dir, 'nginx.conf'),
      privateNginxConfig(dir, [
        'server {',
        `  listen 127.0.0.1:${nginxPort};`,
        `  location ${PREFIX}/ {`,
        `    proxy_pass http://${new URL(server.url).host}/;`,
        '    proxy_set_header Host $http_host;',
        '    proxy_set_header X-Forwarded-For $remote_addr;',
        '    proxy_set_header X-Forwarded-Proto $scheme;',
        '  }',
        '}',
      ]),
    );
    nginx = spawn('nginx', nginxArgs(dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout?.on('data', (chunk: Buffer) => (nginxLog += chunk.toString('utf8')));
    nginx.stderr?.on('data', (chunk: Buffer) => (nginxLog += chunk.toString('utf8')));
    await waitFor(async () => (await fetch(`${issuer}/.well-known/openid-configuration`).catch(() => undefined))?.status === 200, 30_000, 100).catch(() => {
      throw new Error(`nginx did not start:\n${nginxLog}`);
    });
    // The admin API straight at Gatehouse's own port (an operator's script inside the network).
    const token = await adminToken(server, ALL_ADMIN_SCOPES);
    const created = await adminCall(server, 'POST', '/users', { username: 'root', password: PASSWORD, roles: ['gatehouse:admin'] }, token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    if (nginx !== undefined && nginx.exitCode === null) {
      nginx.kill('SIGQUIT');
      await once(nginx, 'exit');
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    await server?.close();
  });

  /** Every link and every form's action on the page, as written in it. */
  async function targets(page: Page): Promise<{ links: string[]; actions: string[] }> {
    return page.evaluate(() => ({
      links: [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href') ?? ''),
      actions: [...document.querySelectorAll('form')].map((form) => form.getAttribute('action') ?? '(no action)'),
    }));
  }

  test('sign-in, every area, a new resource server and sign-out, all through nginx under /auth', async () => {
    // No bypassCSP: console.js must run under the console's own Content-Security-Policy.
    const context = await browser.newContext();
    const failures: string[] = [];
    const requests: string[] = [];
    const redirects: string[] = [];
    const scriptErrors: string[] = [];
    context.on('request', (request) => requests.push(request.url()));
    context.on('requestfailed', (request) => failures.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText ?? 'failed'}`));
    context.on('response', (response) => {
      if (response.status() >= 400) failures.push(`${response.request().method()} ${response.url()}: ${response.status()}`);
      const location = response.headers()['location'];
      if (location !== undefined) redirects.push(location);
    });
    context.on('console', (message) => {
      // Chromium asks the host's root for /favicon.ico (the pages name no icon): outside ISSUER's
      // path, so not Gatehouse's to answer; the only failure expected.
      if (message.type() === 'error' && message.location().url !== `${new URL(issuer).origin}/favicon.ico`) scriptErrors.push(`${message.text()} at ${message.location().url}`);
    });
    context.on('weberror', (error) => scriptErrors.push(String(error.error())));

    const page = await firstConsoleSignIn(context, issuer, 'root', PASSWORD);
    await page.waitForSelector('h1:has-text("Overview")');

    // The stylesheet and the script came through the path and the stylesheet applied.
    for (const asset of [`${issuer}/static/gatehouse.css`, `${issuer}/static/console.js`]) assert.ok(requests.includes(asset), `${asset} requested: ${requests.join('\n')}`);
    assert.equal(await page.evaluate(() => [...document.styleSheets].filter((sheet) => sheet.cssRules.length > 0).length), 1, 'the stylesheet loaded');
    await screenshots(page, 'console-proxy-overview');

    // The console's session cookie is for its path as the browser sees it; nothing is set for the whole host.
    // All of the browser's cookies (context.cookies(issuer) would leave out those for /auth/console).
    const cookies = await context.cookies();
    const consoleCookie = cookies.find((cookie) => cookie.name === 'gatehouse-console');
    assert.ok(consoleCookie, JSON.stringify(cookies));
    assert.equal(consoleCookie.path, `${PREFIX}/console`);
    assert.deepEqual(
      cookies.filter((cookie) => !cookie.path.startsWith(PREFIX)).map((cookie) => `${cookie.name} (${cookie.path})`),
      [],
      'every cookie is scoped to ISSUER’s path',
    );

    // Links and form actions start with ISSUER's path (as written in the page, or the full issuer).
    const consoleUrl = `${issuer}/console`;
    const allowed = (target: string) => target.startsWith(`${PREFIX}/console`) || target.startsWith(`${issuer}/`) || target === issuer;
    const seen = new Set<string>([consoleUrl]);
    const queue: string[] = [];
    const misplaced: string[] = [];
    const check = async (at: string) => {
      const { links, actions } = await targets(page);
      for (const action of actions) if (!allowed(action)) misplaced.push(`${at}: form ${action}`);
      for (const target of links) {
        if (!allowed(target)) misplaced.push(`${at}: ${target}`);
        const absolute = new URL(target, page.url()).href.replace(/#.*$/, '');
        // GET pages only: destructive actions are confirmation pages on GET, so following links is safe.
        if (absolute.startsWith(`${consoleUrl}/`) && !absolute.startsWith(`${consoleUrl}/sign-`) && !seen.has(absolute)) {
          seen.add(absolute);
          queue.push(absolute);
        }
      }
    };

    // A resource server created through the form: the post and its redirect stay under /auth.
    await page.goto(`${consoleUrl}/resource-servers/new`);
    const identifier = `https://proxy-${Date.now()}.example.com`;
    await page.fill('#identifier', identifier);
    await page.fill('#name', 'Behind the proxy');
    await page.fill('#scopes', 'things:read');
    const [posted] = await Promise.all([
      page.waitForResponse((response) => response.request().method() === 'POST'),
      page.waitForURL(new RegExp(`^${issuer.replace(/[.]/g, '\\.')}/console/resource-servers/[0-9a-f-]{36}\\?done=created$`)),
      page.click('button:has-text("Create resource server")'),
    ]);
    assert.equal(posted.url(), `${consoleUrl}/resource-servers`);
    assert.equal(posted.status(), 303);
    assert.equal(await page.textContent('#server-identifier'), identifier);
    // console.js ran (CSP script-src 'self' under the path): the copy button is shown.
    await waitFor(() => page.locator('button[data-copy="server-identifier"]').isVisible(), 10_000);

    // Every console page reachable by links from the overview (each area, its new, detail and
    // confirmation pages, the new resource server's among them), and the links on each.
    await page.goto(consoleUrl);
    await check(consoleUrl);
    const areaPages = await page.locator('.areas a').evaluateAll((links) => links.map((a) => (a as HTMLAnchorElement).href));
    assert.ok(areaPages.length >= 7, `every area has pages: ${areaPages.join(', ')}`);
    for (let visited = 0; queue.length > 0 && visited < 100; visited += 1) {
      const url = queue.shift()!;
      const response = await page.goto(url);
      assert.equal(response?.status(), 200, url);
      await check(url);
    }
    assert.equal(queue.length, 0, 'every reachable page visited');
    assert.ok(seen.size >= 20, `pages visited: ${[...seen].join(', ')}`);
    assert.deepEqual(misplaced, [], 'every link and form action starts with ISSUER’s path');

    // Signing out: to Gatehouse's end-session page under /auth, then to a fresh sign-in under /auth.
    await Promise.all([page.waitForURL((url) => url.href.startsWith(`${issuer}/session/end`)), page.click('button:has-text("Sign out")')]);
    await page.waitForSelector('h1:has-text("Sign out?")');
    await page.click('button:has-text("Yes, sign me out")');
    await page.waitForSelector('#username');
    assert.ok(page.url().startsWith(`${issuer}/interaction/`), page.url());
    assert.equal((await context.cookies()).filter((cookie) => cookie.name === 'gatehouse-console' && cookie.value !== '').length, 0, 'the console session cookie is gone');

    // Whatever the browser asked for went through nginx under /auth, and nothing failed.
    assert.deepEqual(requests.filter((url) => !url.startsWith(`${issuer}/`)), [], 'every request under ISSUER');
    assert.deepEqual(
      redirects.filter((location) => !(location.startsWith(`${issuer}/`) || location.startsWith(`${PREFIX}/`))),
      [],
      'every redirect under ISSUER',
    );
    assert.deepEqual(failures, [], 'no failed requests');
    assert.deepEqual(scriptErrors, [], 'no script or CSP errors');
    await context.close();
  });
});
