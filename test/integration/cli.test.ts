import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { commandHelp } from '../../src/cli/command.js';
import { COMMANDS } from '../../src/cli/index.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { REPO_ROOT, spawnGatehouse } from '../support/process.js';

async function runCli(env: Record<string, string>, args: readonly string[], options: { stdin?: string } = {}) {
  const run = spawnGatehouse(env, 'cli', args, options);
  const code = await run.exited;
  return { code, ...run.output };
}

function assertNoStackTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /\n\s+at /);
}

const EVERY_COMMAND = [
  'migrate',
  'clients create',
  'clients list',
  'clients show',
  'clients delete',
  'clients rotate-secret',
  'resource-servers create',
  'resource-servers list',
  'gateway-routes create',
  'gateway-routes list',
  'gateway-routes show',
  'gateway-routes update',
  'gateway-routes delete',
  'users create',
  'users list',
  'users disable',
  'users reset-mfa',
  'users passkeys',
  'users remove-passkey',
  'identity-providers create',
  'identity-providers list',
  'identity-providers show',
  'identity-providers update',
  'identity-providers delete',
  'keys list',
  'keys rotate',
  'keys revoke',
  'master-key rewrap',
  'admin-client create',
  'audit tail',
];

describe('operator CLI: help and usage errors (no database is opened)', () => {
  // A DATA_DIR that must never come into existence: help and usage errors open nothing.
  const dataDir = path.join(tmpdir(), `gatehouse-cli-never-${randomBytes(6).toString('hex')}`);
  const env = { DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
  after(() => assert.equal(existsSync(dataDir), false, 'a help or usage run opened the database'));

  test('gatehouse --help lists every command on one line, the configuration and the exit codes', async () => {
    const [long, word, none] = await Promise.all([runCli(env, ['--help']), runCli(env, ['help']), runCli(env, [])]);
    assert.equal(long.code, 0, long.stderr);
    assert.equal(word.stdout, long.stdout);
    for (const command of EVERY_COMMAND) assert.match(long.stdout, new RegExp(`^  ${command}( [A-Z_.\\[\\] ]+)?  +\\S.*$`, 'm'), command);
    for (const variable of ['DATABASE_URL', 'DATA_DIR', 'MASTER_KEY', 'ISSUER', 'GATEHOUSE_PASSWORD']) assert.match(long.stdout, new RegExp(`^  ${variable} `, 'm'));
    assert.match(long.stdout, /^exit codes:\n {2}0 .*\n {2}1 .*\n {2}2 .*\n(?: .*\n)* {2}3 .*not found.*\n {2}4 .*conflict/m);
    // No command at all: the usage, on stderr, exit 2.
    assert.equal(none.code, 2);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /^usage: gatehouse <command>/);
  });

  test('every command has --help with its options, --json and examples', async () => {
    // Rendered in-process for all of them; the spawned runs below prove the wiring.
    assert.deepEqual(
      COMMANDS.map((command) => command.path.join(' ')),
      EVERY_COMMAND,
    );
    for (const command of COMMANDS) {
      const help = commandHelp(command);
      assert.match(help, new RegExp(`^usage: gatehouse ${command.path.join(' ')}`), command.path.join(' '));
      assert.match(help, /^ {2}--json /m);
      assert.match(help, /^examples:\n {2}.*gatehouse /m);
      for (const name of Object.keys(command.options ?? {})) assert.match(help, new RegExp(`^  --${name}\\b`, 'm'), `${command.path.join(' ')} --${name}`);
    }
    const [group, groupWord, leaf, leafWord] = await Promise.all([
      runCli(env, ['clients', '--help']),
      runCli(env, ['help', 'clients']),
      runCli(env, ['clients', 'create', '--help']),
      runCli(env, ['help', 'clients', 'create']),
    ]);
    assert.equal(group.code, 0);
    assert.equal(groupWord.stdout, group.stdout);
    for (const command of ['create', 'list', 'show', 'delete', 'rotate-secret']) assert.match(group.stdout, new RegExp(`^  clients ${command}`, 'm'));
    assert.equal(leaf.code, 0);
    assert.equal(leafWord.stdout, leaf.stdout);
    assert.equal(leaf.stdout, commandHelp(COMMANDS.find((command) => command.path.join(' ') === 'clients create')!));
  });

  test('usage mistakes exit 2 with a gatehouse: line and the usage on stderr, never a stack trace', async () => {
    const cases: { args: string[]; stderr: RegExp }[] = [
      { args: ['nonsense'], stderr: /^gatehouse: unknown command "nonsense"\n\nusage: gatehouse <command>/ },
      { args: ['clients', 'explode'], stderr: /^gatehouse: unknown command "clients explode"\n\nusage: gatehouse clients <command>/ },
      { args: ['clients'], stderr: /^gatehouse: "clients" needs a command/ },
      { args: ['clients', 'list', '--bogus'], stderr: /^gatehouse: unknown option --bogus\nusage: gatehouse clients list / },
      { args: ['clients', 'create', '--name'], stderr: /^gatehouse: --name needs a value\n/ },
      { args: ['clients', 'create', '--name', '--json'], stderr: /^gatehouse: --name needs a value/ },
      { args: ['clients', 'create', '--name', 'a', '--name', 'b'], stderr: /^gatehouse: --name given more than once/ },
      { args: ['keys', 'list', '--json=yes'], stderr: /^gatehouse: --json takes no value/ },
      { args: ['clients', 'delete'], stderr: /^gatehouse: missing CLIENT_ID\nusage: gatehouse clients delete CLIENT_ID/ },
      { args: ['users', 'disable', 'a', 'b'], stderr: /^gatehouse: unexpected argument "b"/ },
      // Validation by the admin API's own schemas, before any database is opened.
      {
        args: ['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--grant', 'password', '--redirect-uri', 'http://example.com/cb'],
        stderr: /^gatehouse: #\/grant_types\/1: must be one of authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:device_code \(--grant\)\n/,
      },
      // SPEC §8: a tls_client_auth client registers exactly one certificate subject.
      {
        args: ['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--auth-method', 'tls_client_auth', '--certificate-bound-tokens'],
        stderr:
          /^gatehouse: #\/tls_client_auth_subject_dn: tls_client_auth needs exactly one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email \(--tls-subject-dn\)\n$/,
      },
      {
        args: ['clients', 'create', '--grant', 'client_credentials', '--auth-method', 'tls_client_auth', '--tls-subject-dn', 'CN=a', '--tls-san-uri', 'spiffe://example.org/a'],
        stderr: /^gatehouse: #\/tls_client_auth_san_uri: tls_client_auth needs exactly one of .* \(--tls-san-uri\)\n$/,
      },
      {
        args: ['clients', 'create', '--grant', 'client_credentials', '--tls-subject-dn', 'orders'],
        stderr:
          /^gatehouse: #\/tls_client_auth_subject_dn: must be an RFC 4514 distinguished name, e.g. CN=orders,O=Example \(--tls-subject-dn\)\ngatehouse: #\/tls_client_auth_subject_dn: only tls_client_auth clients register a certificate subject \(--tls-subject-dn\)\n$/,
      },
      {
        args: ['clients', 'create', '--grant', 'client_credentials', '--auth-method', 'self_signed_tls_client_auth'],
        stderr: /^gatehouse: #\/jwks: self_signed_tls_client_auth needs jwks or jwks_uri holding the certificate \(x5c\) \(--jwks-file or --certificate-file\)\n$/,
      },
      // SPEC §9: the token-exchange grant (short name or URN) and its subject audiences come together; never for a public client.
      {
        args: ['clients', 'create', '--name', 'x', '--grant', 'token-exchange', '--resource', 'https://payments.test'],
        stderr:
          /^gatehouse: #\/token_exchange: the token-exchange grant needs token_exchange\.subject_audiences: the resource servers whose tokens the client may exchange \(--exchange-subject-audience\)\n$/,
      },
      {
        args: ['clients', 'create', '--grant', 'urn:ietf:params:oauth:grant-type:token-exchange'],
        stderr: /^gatehouse: #\/token_exchange: the token-exchange grant needs token_exchange\.subject_audiences: .* \(--exchange-subject-audience\)\n$/,
      },
      {
        args: ['clients', 'create', '--grant', 'client_credentials', '--exchange-subject-audience', 'https://orders.test'],
        stderr: /^gatehouse: #\/token_exchange: only clients with the urn:ietf:params:oauth:grant-type:token-exchange grant have token_exchange \(--exchange-subject-audience\)\n$/,
      },
      {
        args: ['clients', 'create', '--grant', 'token-exchange', '--auth-method', 'none', '--exchange-subject-audience', 'https://orders.test', '--exchange-subject-audience', 'orders'],
        stderr:
          /^gatehouse: #\/token_exchange\/subject_audiences\/1: must be an absolute URI without a fragment \(--exchange-subject-audience\)\ngatehouse: #\/token_endpoint_auth_method: a public client \(none\) cannot exchange tokens \(--auth-method\)\n$/,
      },
      { args: ['resource-servers', 'create', '--identifier', 'not a uri', '--name', 'x', '--ttl', 'soon'], stderr: /^gatehouse: #\/identifier: must be an absolute URI without a fragment \(--identifier\)\ngatehouse: #\/access_token_ttl: must be a number of seconds \(--ttl\)\n$/ },
      { args: ['keys', 'rotate', 'HS256'], stderr: /^gatehouse: #\/algs\/0: must be one of ES256, EdDSA, PS256, RS256 \(ALG\)\n$/ },
      { args: ['audit', 'tail', '--limit', '500'], stderr: /^gatehouse: #\/limit: limit must be at most 200 \(--limit\)\n$/ },
      { args: ['users', 'create', '--username', 'alice'], stderr: /^gatehouse: no password: set GATEHOUSE_PASSWORD or pipe it on stdin/ },
    ];
    const runs = await Promise.all(cases.map(({ args }) => runCli(env, args)));
    cases.forEach(({ args, stderr }, index) => {
      const run = runs[index]!;
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.stdout, '', args.join(' '));
      assert.match(run.stderr, stderr, args.join(' '));
      assertNoStackTrace(run.stderr);
    });
  });

  test('a short password is a field error naming where it came from', async () => {
    const run = await runCli({ ...env, GATEHOUSE_PASSWORD: 'short' }, ['users', 'create', '--username', 'alice']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^gatehouse: #\/password: must be at least 12 characters \(GATEHOUSE_PASSWORD or stdin\)\n$/);
  });

  test('invalid configuration exits 1 naming the variable', async () => {
    const run = await runCli({ ...env, MASTER_KEY: 'short' }, ['keys', 'list']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^gatehouse: invalid configuration: MASTER_KEY must be 32 bytes/);
    assertNoStackTrace(run.stderr);
  });
});

describe('operator CLI: keys', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    database = await createTestDatabase();
    env = {
      DATA_DIR: database.dataDir,
      MASTER_KEY: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'warn',
      ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
    };
  });
  after(() => database.drop());

  const cli = (...args: string[]) => runCli(env, args);

  test('on an empty database the first command prints the generated admin client once', async () => {
    const first = await cli('keys', 'list');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /client_id: +\S+\n +client_secret: +[\w-]{43}/);
    const second = await cli('keys', 'list');
    assert.doesNotMatch(second.stdout, /client_secret/);
    assert.match(second.stdout, /^KID +ALG +STATUS +CREATED_AT +PUBLISHED_UNTIL$/m);
  });

  test('keys rotate makes a new active key and keeps the old one published', async () => {
    const before = await cli('keys', 'list', '--json');
    assert.equal(before.code, 0, before.stderr);
    const oldKid = (JSON.parse(before.stdout) as { items: { kid: string; alg: string; status: string }[] }).items.find((key) => key.alg === 'ES256' && key.status === 'active')?.kid;
    assert.ok(oldKid);
    const rotated = await cli('keys', 'rotate', 'ES256');
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKid = /^(\S+) +ES256 +active/m.exec(rotated.stdout)?.[1];
    assert.ok(newKid && newKid !== oldKid);
    const after = (await cli('keys', 'list')).stdout;
    assert.match(after, new RegExp(`^${newKid} +ES256 +active`, 'm'));
    assert.match(after, new RegExp(`^${oldKid} +ES256 +retired +\\S+ +\\d{4}-`, 'm'));
  });

  test('keys revoke takes a key out at once, promotes the next one; again exits 4, an unknown kid 3', async () => {
    const keys = JSON.parse((await cli('keys', 'list', '--json')).stdout) as { items: { kid: string; alg: string; status: string }[] };
    const active = keys.items.find((key) => key.alg === 'EdDSA' && key.status === 'active')!;
    const next = keys.items.find((key) => key.alg === 'EdDSA' && key.status === 'next')!;
    const revoked = await cli('keys', 'revoke', active.kid);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`^${active.kid} +EdDSA +revoked`, 'm'));
    const after = (await cli('keys', 'list')).stdout;
    assert.match(after, new RegExp(`^${next.kid} +EdDSA +active`, 'm'));
    assert.match(after, /^\S+ +EdDSA +next/m);
    const again = await cli('keys', 'revoke', active.kid);
    assert.equal(again.code, 4);
    assert.match(again.stderr, /^gatehouse: the key is already revoked\n$/);
    const unknown = await cli('keys', 'revoke', 'no-such-kid');
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /^gatehouse: no signing key with that kid\n$/);
  });
});

describe('operator CLI: the built package (bin/gatehouse.js runs dist/cli.js)', () => {
  let root: string;
  let database: TestDatabase;

  before(async () => {
    // A copy of the package as npm installs it: bin/ and a fresh tsc build in dist/, beside the
    // repository's node_modules, migrations and views.
    root = await mkdtemp(path.join(tmpdir(), 'gatehouse-package-'));
    await promisify(execFile)(process.execPath, [
      path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      path.join(REPO_ROOT, 'tsconfig.build.json'),
      '--outDir',
      path.join(root, 'dist'),
      '--declaration',
      'false',
      '--sourceMap',
      'false',
    ]);
    await mkdir(path.join(root, 'bin'));
    await copyFile(path.join(REPO_ROOT, 'bin/gatehouse.js'), path.join(root, 'bin/gatehouse.js'));
    await copyFile(path.join(REPO_ROOT, 'package.json'), path.join(root, 'package.json'));
    for (const shared of ['node_modules', 'migrations', 'views']) await symlink(path.join(REPO_ROOT, shared), path.join(root, shared));
    database = await createTestDatabase();
  });
  after(async () => {
    await database.drop();
    await rm(root, { recursive: true, force: true });
  });

  async function built(args: readonly string[]) {
    const env = {
      PATH: process.env['PATH'] ?? '',
      DATA_DIR: database.dataDir,
      MASTER_KEY: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'warn',
      ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
    };
    const child = spawn(process.execPath, [path.join(root, 'bin/gatehouse.js'), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, stdout, stderr };
  }

  test('--help, and a command that opens the database and builds the app, run from dist/', async () => {
    const help = await built(['--help']);
    assert.equal(help.code, 0, help.stderr);
    for (const command of EVERY_COMMAND) assert.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'));
    const listed = await built(['resource-servers', 'list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const page = JSON.parse(listed.stdout) as { items: { identifier: string; built_in: boolean }[] };
    assert.deepEqual(
      page.items.map((server) => [server.identifier, server.built_in]),
      [['http://localhost:3000/admin', true]],
    );
  });
});
