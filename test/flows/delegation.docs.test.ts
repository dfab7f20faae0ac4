import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { REPO_ROOT } from '../support/process.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { freePort, startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * docs/delegation.md, run as written: its labelled fenced blocks (```sh setup, ```ts
 * orders-service.ts, ...) against a real Gatehouse. The shell blocks run in bash in a scratch
 * directory, with the README's `json` helper, `$ADMIN_TOKEN` and `$PERSON_TOKEN` (from a real
 * sign-in of the doc's shop client) in the environment. The only edits: `localhost:3000` and
 * `localhost:4001` become the test's Gatehouse and orders service, and `gatehouse/verifier`
 * (the package export, built into dist/) becomes the source it is built from. The services read
 * ISSUER, PORT and PAYMENTS_URL from the environment, as written, and run as the doc says:
 * `node --import tsx <file>` in the directory the setup wrote their keys and credentials to.
 */

const DOC = join(REPO_ROOT, 'docs/delegation.md');
const VERIFIER_SOURCE = pathToFileURL(join(REPO_ROOT, 'src/verifier/index.ts')).href;
const ORDERS = 'https://orders.example.com';
const SHOP_REDIRECT = 'https://shop.example.com/callback';
const PASSWORD = 'correct horse battery staple';
/** The `json` helper of README.md, "Your first token". */
const JSON_HELPER = `json() { node -pe "JSON.parse(require('fs').readFileSync(0, 'utf8')).$1"; }`;

interface Block {
  readonly lang: string;
  readonly label: string;
  readonly body: string;
}

/** Fenced blocks whose info string is a language and a label: ```ts orders-service.ts */
function labelledBlocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(\w+)[ \t]+(\S+)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)].map((match) => ({ lang: match[1]!, label: match[2]!, body: match[3]! }));
}

/**
 * One bash session the shell blocks are typed into one after another, as a reader would in one
 * terminal: the variables and functions a block defines are there for the next.
 */
class Terminal {
  private readonly child: ChildProcess;
  private stdout = '';
  private stderr = '';
  private blocks = 0;

  constructor(cwd: string, env: Record<string, string>) {
    this.child = spawn('bash', ['--noprofile', '--norc'], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString('utf8')));
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.child.stdin!.write(`set -uE -o pipefail\n${JSON_HELPER}\n`);
  }

  /** `export NAME=value`, as a reader pastes a value in. */
  async set(name: string, value: string): Promise<void> {
    await this.run(`export ${name}='${value.replaceAll("'", "'\\''")}'`);
  }

  async run(script: string): Promise<string> {
    this.blocks += 1;
    const marker = `--- block ${this.blocks} done, failed:`;
    const [outFrom, errFrom] = [this.stdout.length, this.stderr.length];
    this.child.stdin!.write(`failed=0; trap 'failed=1' ERR\n${script}\ntrap - ERR; printf '\\n%s %s\\n' '${marker}' "$failed"\n`);
    await new Promise<void>((resolve, reject) => {
      const exited = () => reject(new Error(`bash exited in\n${script}\n${this.stderr.slice(errFrom)}`));
      const check = () => {
        if (!this.stdout.includes(marker, outFrom)) return;
        this.child.stdout!.off('data', check);
        this.child.off('exit', exited);
        resolve();
      };
      this.child.stdout!.on('data', check);
      this.child.once('exit', exited);
    });
    const at = this.stdout.indexOf(marker, outFrom);
    const failed = this.stdout.slice(at + marker.length).trim().startsWith('1');
    assert.ok(!failed, `a command failed in\n${script}\n${this.stderr.slice(errFrom)}${this.stdout.slice(outFrom, at)}`);
    return this.stdout.slice(outFrom, at).replace(/\n$/, '');
  }

  close(): void {
    this.child.stdin!.end();
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

interface Service {
  readonly child: ChildProcess;
  readonly output: { text: string };
}

describe('docs/delegation.md, run as written: shop → orders → payments with token exchange', () => {
  let server: TestServer;
  let dir: string;
  let blocks: Block[];
  let ordersPort: number;
  let paymentsPort: number;
  let env: Record<string, string>;
  let ordersClientId: string;
  let paymentsClientId: string;
  let userId: string;
  const services: Service[] = [];
  let terminal: Terminal;

  function block(label: string): Block {
    const found = blocks.filter((candidate) => candidate.label === label);
    assert.equal(found.length, 1, `docs/delegation.md has exactly one block labelled ${label}`);
    return found[0]!;
  }

  /** A shell block, typed into the terminal; its output. Any failing command in it fails the test. */
  async function shell(label: string): Promise<string> {
    const { lang, body } = block(label);
    assert.equal(lang, 'sh');
    return terminal.run(body.replaceAll('localhost:3000', new URL(server.url).host).replaceAll('localhost:4001', `127.0.0.1:${ordersPort}`));
  }

  /**
   * A TypeScript block, written to the scratch directory under its label; `gatehouse/verifier`
   * pointed at the source to run it (tsc maps it with `paths` instead).
   */
  async function writeModule(label: string, toRun = true): Promise<void> {
    const { lang, body } = block(label);
    assert.equal(lang, 'ts');
    await writeFile(join(dir, label), toRun ? body.replaceAll("from 'gatehouse/verifier'", `from '${VERIFIER_SOURCE}'`) : body);
  }

  /** `node --import tsx <file>`, as the doc runs it. */
  function start(file: string, extra: Record<string, string>): Service {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: dir, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    const output = { text: '' };
    child.stdout.on('data', (chunk: Buffer) => (output.text += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output.text += chunk.toString('utf8')));
    const service = { child, output };
    services.push(service);
    return service;
  }

  async function listening(service: Service, line: string): Promise<void> {
    await waitFor(() => {
      assert.equal(service.child.exitCode, null, `exited: ${service.output.text}`);
      return service.output.text.includes(line);
    }, 30_000).catch((error: unknown) => assert.fail(`${line}: ${String(error)}\n${service.output.text}`));
  }

  before(async () => {
    blocks = labelledBlocks(await readFile(DOC, 'utf8'));
    server = await startTestServer();
    // A scratch directory inside the repository, so koa, openid-client and tsx resolve from node_modules.
    await mkdir(join(REPO_ROOT, '.scratch'), { recursive: true });
    dir = await mkdtemp(join(REPO_ROOT, '.scratch', 'delegation-docs-'));
    [ordersPort, paymentsPort] = [await freePort(), await freePort()];
    env = {
      PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`,
      HOME: process.env['HOME'] ?? '/tmp',
      ADMIN_TOKEN: await adminToken(server, 'admin:clients admin:resource-servers admin:users'),
    };
    // alice, as docs/people-and-mfa.md creates her.
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'alice', password: PASSWORD, email: 'alice@example.com', email_verified: true, name: 'Alice', roles: ['buyer'] }, env['ADMIN_TOKEN']);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    terminal = new Terminal(dir, env);
  });

  after(async () => {
    terminal?.close();
    for (const { child } of services) if (child.exitCode === null) child.kill('SIGTERM');
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('setup: keys, three resource servers, the shop and the two service clients', async () => {
    await shell('setup');
    const read = async (file: string) => JSON.parse(await readFile(join(dir, file), 'utf8')) as Record<string, unknown>;
    const orders = await read('orders-client.json');
    const payments = await read('payments-client.json');
    ordersClientId = String(orders['client_id']);
    paymentsClientId = String(payments['client_id']);
    assert.deepEqual(orders['token_exchange'], { subject_audiences: [ORDERS] });
    assert.equal(typeof orders['client_secret'], 'string');
    assert.equal((await read('orders-inner.private.json'))['d'] !== undefined, true, 'the private half stays with the service');
  });

  test('a real sign-in of alice at the shop gives the token for orders', async () => {
    const shop = JSON.parse(await readFile(join(dir, 'shop.json'), 'utf8')) as { client_id: string; client_secret: string; scope: string };
    const config = await oidc.discovery(new URL(server.issuer), shop.client_id, shop.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const { verifier, state, nonce, params } = await pkceParams(SHOP_REDIRECT, shop.scope, { resource: ORDERS });
    const { callback } = await signIn(new CookieClient(), config, server.url, params, { username: 'alice', password: PASSWORD });
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, { resource: ORDERS });
    env['PERSON_TOKEN'] = tokens.access_token;
    await terminal.set('PERSON_TOKEN', tokens.access_token);
    const claims = decodeJwt(tokens.access_token);
    assert.equal(claims.aud, ORDERS);
    assert.equal(claims['scope'], 'orders:write payments:charge ledger:write');
  });

  test('the call: payments reads alice from the inner layer and the orders client from act', async () => {
    await writeModule('payments-service.ts');
    await writeModule('orders-service.ts');
    const payments = start('payments-service.ts', { ISSUER: server.issuer, PORT: String(paymentsPort) });
    const orders = start('orders-service.ts', { ISSUER: server.issuer, PORT: String(ordersPort), PAYMENTS_URL: `http://127.0.0.1:${paymentsPort}` });
    await listening(payments, `payments on port ${paymentsPort}`);
    await listening(orders, `orders on port ${ordersPort}`);

    const answer = JSON.parse(await shell('call')) as Record<string, unknown>;
    assert.deepEqual(answer, { customer: 'alice', payment: { charged: 'alice', amount: 1200, requested_by: ordersClientId } }, orders.output.text + payments.output.text);
    // What the doc shows, with its placeholder filled in.
    assert.deepEqual(answer, JSON.parse(block('call-output').body.replace('<orders service client_id>', ordersClientId)));
  });

  test('the exchange by hand: the response shape, and the token’s claims', async () => {
    await shell('exchange');
    const response = JSON.parse(await readFile(join(dir, 'payments-token.json'), 'utf8')) as Record<string, unknown>;
    const documented = JSON.parse(block('exchange-response').body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(response).sort(), Object.keys(documented).sort());
    for (const field of ['issued_token_type', 'token_type', 'scope'] as const) assert.equal(response[field], documented[field], field);
    assert.ok(typeof response['expires_in'] === 'number' && response['expires_in'] <= 900);

    const subject = decodeJwt(env['PERSON_TOKEN']!);
    const claims = decodeJwt(String(response['access_token']));
    assert.equal(claims.sub, userId);
    assert.equal(claims.aud, 'https://payments.example.com');
    assert.equal(claims['client_id'], ordersClientId);
    assert.deepEqual(claims['act'], { sub: ordersClientId });
    assert.equal(claims['acr'], subject['acr']);
    assert.equal(claims['auth_time'], subject['auth_time']);
    assert.ok(claims.exp! <= subject.exp!);
    assert.equal(typeof claims['inner'], 'string');
  });

  test('the refusals print what the doc shows', async () => {
    const lines = (await shell('refusals')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const documented = block('refusals-output').body.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(lines, documented);
  });

  test('chains: payments exchanges its token for the ledger; act nests, no inner layer for the ledger', async () => {
    const claims = JSON.parse(await shell('chain')) as Record<string, unknown>;
    assert.equal(claims['sub'], userId);
    assert.equal(claims['aud'], 'https://ledger.example.com');
    assert.equal(claims['client_id'], paymentsClientId);
    assert.equal(claims['scope'], 'ledger:write');
    assert.deepEqual(claims['act'], { sub: paymentsClientId, act: { sub: ordersClientId } });
    assert.equal(claims['inner'], undefined);
  });

  test('the TypeScript blocks type-check under the repository’s strict settings', async () => {
    for (const label of ['payments-service.ts', 'orders-service.ts', 'orders-dpop.ts']) await writeModule(label, false);
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: join(REPO_ROOT, 'tsconfig.json'),
        compilerOptions: { rootDir: REPO_ROOT, noEmit: true, paths: { 'gatehouse/verifier': [join(REPO_ROOT, 'src/verifier/index.ts')] } },
        include: ['*.ts'],
      }),
    );
    const tsc = spawn(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    tsc.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    tsc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const [code] = (await once(tsc, 'exit')) as [number | null];
    assert.equal(code, 0, output);
  });

  test('DPoP: the exchanged token is bound to orders’ own key, and payments takes it with a proof', async () => {
    await writeModule('orders-dpop.ts');
    const script = start('orders-dpop.ts', { ISSUER: server.issuer, PAYMENTS_URL: `http://127.0.0.1:${paymentsPort}`, PERSON_TOKEN: env['PERSON_TOKEN']! });
    await waitFor(() => script.child.exitCode !== null, 30_000);
    assert.equal(script.child.exitCode, 0, script.output.text);
    const [tokenType, status, body] = script.output.text.trim().split('\n').flatMap((line, index) => (index === 1 ? [line.slice(0, 3), line.slice(4)] : [line]));
    assert.equal(tokenType, 'dpop');
    assert.equal(status, '201');
    assert.deepEqual(JSON.parse(body!), { charged: 'alice', amount: 1200, requested_by: ordersClientId });
  });
});
