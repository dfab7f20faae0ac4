import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPasswordHasher } from '../src/accounts/passwords.js';
import { normalizeUsername, usernameSkeleton } from '../src/accounts/usernames.js';
import { connectPostgres } from '../src/db/database.js';
import { createUserService } from '../src/management/users/service.js';
import { ADMIN_SCOPES } from '../src/management/admin-scopes.js';
import { CookieClient, formAction, hiddenField } from '../test/support/cookie-client.js';
import { totpCode } from '../test/support/totp.js';
import {
  adminPost,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  envFlag,
  envNumber,
  fileStamp,
  fmt,
  launchGatehouse,
  log,
  onAbort,
  RESULTS_DIR,
  runBench,
  sourceVersion,
  writeBenchOutput,
  type BenchDatabase,
  type Check,
  type Gatehouse,
} from './support.js';

/**
 * `npm run bench:console-lists`: the admin console's lists on a large database (SPEC §11: pages
 * stay fast with 10,000 rows). Seeds 10,000 clients and 10,000 users straight into the tables of
 * a fresh database (one INSERT each, in one transaction), starts Gatehouse (the production
 * build), signs a gatehouse:admin person in to the console over HTTP (password, then TOTP
 * enrollment, with a cookie jar), and times GETs of:
 *
 * - the clients list's first page (repeated);
 * - pages 1 to 100 walked through the "Next page" cursors (each page timed);
 * - a name-prefix search matching a quarter of the clients, and its next page (repeated);
 * - the same for the users list (`/console/users`, `?q=`). Where that route is not there (404),
 *   the users service's list (`management.users.list`, in this process, on the same database) is
 *   timed instead, and the report says so.
 *
 * Each figure is the wall time of one request until its whole body is read, on 127.0.0.1.
 * Target: < 300 ms per page (reported, not enforced unless BENCH_ENFORCE=1).
 *
 * Environment (all optional):
 *   BENCH_DATABASE_URL   PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_ROWS           clients and users each (default 10000)
 *   BENCH_REPEATS        samples of each repeated page (default 30)
 *   BENCH_PAGES          pages walked through cursors (default 100)
 *   BENCH_SKIP_BUILD=1   use dist/ as it is
 *   BENCH_ENFORCE=1      exit 1 when a target is not met
 */

const settings = {
  databaseUrl: process.env['BENCH_DATABASE_URL'] ?? DEFAULT_DATABASE_URL,
  rows: envNumber('BENCH_ROWS', 10_000, 100, 1_000_000),
  repeats: envNumber('BENCH_REPEATS', 30, 1, 1_000),
  pages: envNumber('BENCH_PAGES', 100, 2, 1_000),
  enforce: envFlag('BENCH_ENFORCE'),
};

const TARGET_MS = 300;
const PASSWORD = 'bench console person password';
/** Four name prefixes, a quarter of the rows each: the searches match 2,500 of 10,000. */
const CLIENT_PREFIXES = ['Billing', 'Orders', 'Shipping', 'Search'] as const;
const USER_PREFIXES = ['alice', 'bob', 'carol', 'dave'] as const;

interface Stats {
  readonly what: string;
  readonly samples: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
}

function stats(what: string, durations: readonly number[]): Stats {
  const sorted = [...durations].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { what, samples: sorted.length, p50: at(0.5), p95: at(0.95), max: sorted.at(-1)! };
}

// ---------------------------------------------------------------------------------------------
// Seeding: one INSERT per table, from arrays built here, in one transaction.

async function seed(database: BenchDatabase): Promise<{ clientsMs: number; usersMs: number }> {
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  try {
    await db.query('BEGIN');
    let started = performance.now();
    const n = settings.rows;
    const ids = Array.from({ length: n }, () => randomBytes(16).toString('base64url'));
    const names = Array.from({ length: n }, (_, i) => `${CLIENT_PREFIXES[i % CLIENT_PREFIXES.length]} worker ${String(i).padStart(5, '0')}`);
    // Metadata as the admin API writes a client-credentials client's (src/management/clients/service.ts metadataOf).
    const metadata = JSON.stringify({
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      post_logout_redirect_uris: [],
      scope: 'bench:read',
    });
    await db.query(
      `INSERT INTO clients (client_id, client_name, client_secret_hash, metadata, allowed_resources)
       SELECT id, name, 'bench-not-a-real-hash', $3::jsonb, '{}' FROM unnest($1::text[], $2::text[]) AS t(id, name)`,
      [ids, names, metadata],
    );
    const clientsMs = performance.now() - started;

    started = performance.now();
    // One real argon2id hash shared by every seeded person (they never sign in).
    const hash = await createPasswordHasher().hash(randomBytes(16).toString('hex'));
    const usernames = Array.from({ length: n }, (_, i) => `${USER_PREFIXES[i % USER_PREFIXES.length]}-${String(i).padStart(5, '0')}`);
    await db.query(
      `INSERT INTO users (username, username_normalized, username_skeleton, email, name, password_hash)
       SELECT u, norm, skel, u || '@bench.example.com', 'Bench ' || u, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS t(u, norm, skel)`,
      [usernames, usernames.map(normalizeUsername), usernames.map(usernameSkeleton), hash],
    );
    const usersMs = performance.now() - started;
    await db.query('COMMIT');
    await db.query('ANALYZE clients');
    await db.query('ANALYZE users');
    return { clientsMs, usersMs };
  } finally {
    await db.end();
  }
}

// ---------------------------------------------------------------------------------------------
// The console over HTTP.

/** The first post form's action in `html`, HTML-unescaped. */
function firstPostAction(html: string): string {
  const action = /<form method="post" action="([^"]*)"/.exec(html)?.[1];
  if (action === undefined) throw new Error(`no form in:\n${html.slice(0, 2000)}`);
  return action.replaceAll('&amp;', '&');
}

/** Signs `username` in to the console for the first time: password, TOTP enrollment, recovery codes. */
async function consoleSignIn(gatehouse: Gatehouse, username: string): Promise<CookieClient> {
  const browser = new CookieClient();
  const consoleUrl = `${gatehouse.url}/console`;
  let page = await browser.follow(await browser.get(consoleUrl), gatehouse.url);
  let html = await page.text();
  const login = formAction(html, /\/login$/);
  if (login === undefined) throw new Error(`no login form (${page.status}):\n${html.slice(0, 2000)}`);
  page = await browser.follow(await browser.postForm(new URL(login, gatehouse.url), { csrf: hiddenField(html, 'csrf') ?? '', username, password: PASSWORD }), gatehouse.url);
  html = await page.text();
  const secret = /href="otpauth:\/\/[^"]*(?:\?|&amp;)secret=([A-Z2-7]+)/.exec(html)?.[1];
  if (secret === undefined) throw new Error(`no TOTP enrollment page (${page.status}):\n${html.slice(0, 2000)}`);
  page = await browser.follow(await browser.postForm(new URL(firstPostAction(html), gatehouse.url), { csrf: hiddenField(html, 'csrf') ?? '', code: totpCode(secret) }), gatehouse.url);
  html = await page.text();
  if (!html.includes('recovery codes')) throw new Error(`no recovery codes page (${page.status}):\n${html.slice(0, 2000)}`);
  page = await browser.follow(await browser.postForm(new URL(firstPostAction(html), gatehouse.url), { csrf: hiddenField(html, 'csrf') ?? '' }), gatehouse.url);
  if (page.status !== 200 || !page.url.endsWith('/console')) throw new Error(`not at the console's overview: ${page.status} ${page.url}`);
  await page.text();
  return browser;
}

interface Fetched {
  readonly ms: number;
  readonly status: number;
  readonly html: string;
}

async function timedGet(browser: CookieClient, url: string): Promise<Fetched> {
  const started = performance.now();
  const response = await browser.get(url);
  const html = await response.text();
  return { ms: performance.now() - started, status: response.status, html };
}

async function okGet(browser: CookieClient, url: string, rowsAtLeast = 1): Promise<Fetched> {
  const fetched = await timedGet(browser, url);
  if (fetched.status !== 200) throw new Error(`GET ${url} answered ${fetched.status}:\n${fetched.html.slice(0, 2000)}`);
  const rows = fetched.html.match(/<tr data-/g)?.length ?? fetched.html.split('<tr').length - 2;
  if (rows < rowsAtLeast) throw new Error(`GET ${url}: ${rows} rows, expected at least ${rowsAtLeast}`);
  return fetched;
}

/** The "Next page" link of a console list, absolute. */
function nextLink(html: string, base: string): string {
  const anchor = /<a href="([^"]*)"[^>]*>Next page<\/a>/.exec(html)?.[1];
  if (anchor === undefined) throw new Error('no Next page link');
  return new URL(anchor.replaceAll('&amp;', '&'), base).toString();
}

async function repeated(what: string, times: number, fetch: () => Promise<Fetched>): Promise<Stats> {
  await fetch(); // warm-up
  const durations: number[] = [];
  for (let i = 0; i < times; i += 1) durations.push((await fetch()).ms);
  return stats(what, durations);
}

/** Pages 1 … `pages` of a console list through its cursors: each fetch timed, and page `pages` alone. */
async function walk(browser: CookieClient, firstUrl: string, pages: number, base: string): Promise<{ all: Stats; last: number }> {
  const durations: number[] = [];
  let url = firstUrl;
  let fetched: Fetched | undefined;
  for (let page = 1; page <= pages; page += 1) {
    if (fetched !== undefined) url = nextLink(fetched.html, base);
    fetched = await okGet(browser, url, 50);
    durations.push(fetched.ms);
  }
  return { all: stats(`pages 1–${pages} through cursors (each)`, durations), last: durations.at(-1)! };
}

interface ListReport {
  readonly list: string;
  readonly via: string;
  readonly rows: Stats[];
  readonly lastPageMs: number;
}

async function measureConsoleList(browser: CookieClient, gatehouse: Gatehouse, area: 'clients' | 'users', searchPrefix: string): Promise<ListReport> {
  const listUrl = `${gatehouse.url}/console/${area}`;
  const first = await repeated('first page', settings.repeats, () => okGet(browser, listUrl, 50));
  const walked = await walk(browser, listUrl, settings.pages, gatehouse.url);
  const searchUrl = `${listUrl}?${new URLSearchParams({ q: searchPrefix }).toString()}`;
  const search = await repeated(`search "${searchPrefix}", first page`, settings.repeats, () => okGet(browser, searchUrl, 50));
  const nextUrl = nextLink((await okGet(browser, searchUrl, 50)).html, gatehouse.url);
  const searchNext = await repeated(`search "${searchPrefix}", next page`, settings.repeats, () => okGet(browser, nextUrl, 50));
  return { list: area, via: `GET /console/${area} over HTTP, signed in`, rows: [first, walked.all, search, searchNext], lastPageMs: walked.last };
}

/** The users service's list, in this process, when the console has no users pages in this tree. */
async function measureUsersService(database: BenchDatabase, searchPrefix: string): Promise<ListReport> {
  const db = connectPostgres({ connectionString: database.url! });
  const users = createUserService({ db, hasher: createPasswordHasher() });
  const time = async (query: Parameters<typeof users.list>[0]) => {
    const started = performance.now();
    const page = await users.list(query);
    const ms = performance.now() - started;
    if (page.items.length < 50) throw new Error(`users.list gave ${page.items.length} items`);
    return { ms, page };
  };
  const repeat = async (what: string, query: Parameters<typeof users.list>[0]) => {
    await time(query);
    const durations: number[] = [];
    for (let i = 0; i < settings.repeats; i += 1) durations.push((await time(query)).ms);
    return stats(what, durations);
  };
  try {
    const first = await repeat('first page', { limit: 50 });
    const durations: number[] = [];
    let cursor: string | undefined;
    for (let page = 1; page <= settings.pages; page += 1) {
      const { ms, page: got } = await time({ limit: 50, cursor });
      durations.push(ms);
      cursor = got.next_cursor ?? undefined;
    }
    const search = await repeat(`search "${searchPrefix}", first page`, { limit: 50, username: searchPrefix });
    const next = (await time({ limit: 50, username: searchPrefix })).page.next_cursor ?? undefined;
    const searchNext = await repeat(`search "${searchPrefix}", next page`, { limit: 50, username: searchPrefix, cursor: next });
    return {
      list: 'users',
      via: '`management.users.list` in the bench process (no /console/users route in this tree)',
      rows: [first, stats(`pages 1–${settings.pages} through cursors (each)`, durations), search, searchNext],
      lastPageMs: durations.at(-1)!,
    };
  } finally {
    await db.close();
  }
}

// ---------------------------------------------------------------------------------------------

function markdown(report: { date: string; environment: Record<string, unknown>; seedMs: { clientsMs: number; usersMs: number }; lists: ListReport[]; checks: Check[] }): string {
  const lines = [
    `# Console lists on ${fmt(settings.rows)} clients and ${fmt(settings.rows)} users (${report.date})`,
    '',
    `Environment: ${Object.entries(report.environment).map(([key, value]) => `${key} ${String(value)}`).join(', ')}.`,
    '',
    `Seeding: ${fmt(settings.rows)} clients in ${fmt(report.seedMs.clientsMs)} ms, ${fmt(settings.rows)} users in ${fmt(report.seedMs.usersMs)} ms (one INSERT each, one transaction).`,
    '',
  ];
  for (const list of report.lists) {
    lines.push(`## ${list.list}: ${list.via}`, '', '| page | samples | p50 ms | p95 ms | max ms |', '|---|---:|---:|---:|---:|');
    for (const row of list.rows) lines.push(`| ${row.what} | ${row.samples} | ${fmt(row.p50, 1)} | ${fmt(row.p95, 1)} | ${fmt(row.max, 1)} |`);
    lines.push('', `Page ${settings.pages} itself: ${fmt(list.lastPageMs, 1)} ms.`, '');
  }
  lines.push('| check | value | target | met |', '|---|---:|---:|---|');
  for (const check of report.checks) lines.push(`| ${check.name} | ${check.display} | ${check.target} | ${check.met ? 'met' : '**NOT met**'} |`);
  lines.push('');
  return lines.join('\n');
}

async function main(): Promise<number> {
  const started = new Date();
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
    if (database.kind !== 'postgres') throw new Error('this bench seeds PostgreSQL directly: BENCH_DATABASE_URL must reach a server');
    log('starting Gatehouse');
    gatehouse = await launchGatehouse(database);
    log(`seeding ${settings.rows} clients and ${settings.rows} users`);
    const seedMs = await seed(database);
    log(`seeded: clients ${seedMs.clientsMs.toFixed(0)} ms, users ${seedMs.usersMs.toFixed(0)} ms`);
    await adminPost(gatehouse.url, await gatehouse.adminToken([...ADMIN_SCOPES]), '/users', { username: 'bench-console', password: PASSWORD, roles: ['gatehouse:admin'] });
    const browser = await consoleSignIn(gatehouse, 'bench-console');
    log('signed in to the console');

    const lists = [await measureConsoleList(browser, gatehouse, 'clients', CLIENT_PREFIXES[0])];
    const usersRoute = await browser.get(`${gatehouse.url}/console/users`);
    await usersRoute.text();
    if (usersRoute.status === 404) {
      log('/console/users is 404 in this tree: timing management.users.list directly');
      lists.push(await measureUsersService(database, USER_PREFIXES[0]));
    } else {
      lists.push(await measureConsoleList(browser, gatehouse, 'users', USER_PREFIXES[0]));
    }
    for (const list of lists) for (const row of list.rows) log(`${list.list}, ${row.what}: p50 ${row.p50.toFixed(1)} ms, p95 ${row.p95.toFixed(1)} ms, max ${row.max.toFixed(1)} ms`);

    const checks: Check[] = lists.map((list) => {
      const worst = Math.max(...list.rows.map((row) => row.max));
      return { name: `${list.list} list, slowest page (max)`, value: worst, display: `${fmt(worst, 1)} ms`, target: `< ${TARGET_MS} ms`, met: worst < TARGET_MS };
    });
    const report = {
      date: started.toISOString(),
      environment: { node: process.version, cpus: cpus().length, loadAverageAtStart: Number((loadavg()[0] ?? 0).toFixed(2)), database: database.kind, rows: settings.rows, source: sourceVersion() },
      seedMs,
      lists,
      checks,
    };
    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `console-lists-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `console-lists-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/console-lists-${stamp}.md and .json`);
    await writeBenchOutput({ title: 'Console lists on 10,000 clients and users', markdown: text, checks, data: report });
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

await runBench(600_000, main);
