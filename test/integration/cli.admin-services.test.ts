import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, importX509 } from 'jose';
import { after, before, describe, test } from 'node:test';
import { createEnvelope } from '../../src/crypto/envelope.js';
import { createOidcModelStore } from '../../src/db/oidc-models.js';
import { createPasskeyStore } from '../../src/db/passkeys.js';
import type { Database } from '../../src/db/database.js';
import { ADMIN_SCOPES } from '../../src/management/admin-scopes.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createPki } from '../support/pki.js';
import { spawnGatehouse } from '../support/process.js';
import { waitFor } from '../support/server.js';

// The operator CLI as a child process against a test database: each command goes through the
// admin API's services, so the rows and audit events are the ones the API would have written.
// Each run opens the database (and PGlite is one process at a time), so assertions are batched
// per run and the test's own queries run between CLI runs.

const ISSUER = 'http://gatehouse.test';

interface AuditRow extends Record<string, unknown> {
  type: string;
  actor: string | null;
  target: string | null;
  request_id: string | null;
}

describe('operator CLI: clients, resource servers, users, admin clients and the audit trail', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    database = await createTestDatabase();
    env = {
      ISSUER,
      DATA_DIR: database.dataDir,
      MASTER_KEY: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'warn',
      ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
    };
  });
  after(() => database.drop());

  async function cli(args: readonly string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
    const run = spawnGatehouse({ ...env, ...options.env }, 'cli', args, options.stdin === undefined ? {} : { stdin: options.stdin });
    const code = await run.exited;
    assert.doesNotMatch(run.output.stderr, /\n\s+at /, 'a stack trace');
    return { code, ...run.output };
  }

  /** The test's own look at the database, closed again before the next CLI run opens it. */
  async function inDatabase<T>(fn: (db: Database) => Promise<T>): Promise<T> {
    const db = await database.connect();
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  async function auditEvents(db: Database, target: string): Promise<AuditRow[]> {
    const { rows } = await db.query<AuditRow>('SELECT type, actor, target, request_id FROM audit_events WHERE target = $1 ORDER BY id', [target]);
    return rows;
  }

  let billingId = '';
  let clientId = '';

  test('resource-servers create --json prints only JSON on stdout; list shows it beside the built-in one', async () => {
    const created = await cli([
      'resource-servers',
      'create',
      '--identifier',
      'https://billing.test',
      '--name',
      'Billing',
      '--scope',
      'invoices:read',
      '--scope',
      'invoices:write refunds:create',
      '--ttl',
      '300',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const server = JSON.parse(created.stdout) as { id: string; identifier: string; scopes: string[]; access_token_ttl: number };
    billingId = server.id;
    assert.deepEqual(server.scopes, ['invoices:read', 'invoices:write', 'refunds:create']);
    assert.equal(server.access_token_ttl, 300);
    // The first run on an empty database generated the admin client: announced on stderr under --json.
    assert.match(created.stderr, /client_secret: +[\w-]{43}/);

    const listed = await cli(['resource-servers', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID +IDENTIFIER +NAME +SCOPES +TTL +ALG +INNER_LAYER$/m);
    assert.match(listed.stdout, new RegExp(`^${billingId} +https://billing\\.test +Billing +invoices:read,invoices:write,refunds:create +300 +ES256 +no$`, 'm'));
    assert.match(listed.stdout, new RegExp(`^\\S+ +${ISSUER}/admin +`, 'm'));

    const taken = await cli(['resource-servers', 'create', '--identifier', 'https://billing.test', '--name', 'Again']);
    assert.equal(taken.code, 4);
    assert.equal(taken.stderr, 'gatehouse: a resource server with that identifier already exists\ngatehouse: #/identifier: already registered (--identifier)\n');

    await inDatabase(async (db) => {
      assert.deepEqual(
        (await auditEvents(db, billingId)).map((event) => [event.type, event.actor]),
        [['resource_server.created', 'cli']],
      );
    });
  });

  test('gateway-routes create, update, show, list and delete go through the service: validated and audited by cli', async () => {
    const refused = await cli(['gateway-routes', 'create', '--host', 'api.billing.test', '--path-prefix', '/invoices', '--resource-server', 'https://billing.test', '--scope', 'orders:read']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /#\/required_scopes\/0: not a scope of https:\/\/billing\.test \(--scope\)/);

    const created = await cli([
      'gateway-routes',
      'create',
      '--host',
      'api.billing.test',
      '--path-prefix',
      '/invoices',
      '--resource-server',
      'https://billing.test',
      '--scope',
      'invoices:read',
      '--method',
      'POST',
      '--method',
      'GET',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const route = JSON.parse(created.stdout) as { id: string; methods: string[] | null; required_scopes: string[] };
    assert.deepEqual(route.methods, ['GET', 'POST']);
    assert.deepEqual(route.required_scopes, ['invoices:read']);

    const updated = await cli(['gateway-routes', 'update', route.id, '--all-methods', '--require-mfa', 'true', '--json']);
    assert.equal(updated.code, 0, updated.stderr);
    const after = JSON.parse(updated.stdout) as { methods: string[] | null; require_mfa: boolean };
    assert.equal(after.methods, null);
    assert.equal(after.require_mfa, true);

    const shown = await cli(['gateway-routes', 'show', route.id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^require_mfa: +true$/m);
    const listed = await cli(['gateway-routes', 'list']);
    assert.match(listed.stdout, /^ID +HOST +PATH_PREFIX +METHODS +RESOURCE_SERVER +SCOPES +UPSTREAM_TOKEN$/m);
    assert.match(listed.stdout, new RegExp(`^${route.id} +api\\.billing\\.test +/invoices +\\* +https://billing\\.test +invoices:read +pass$`, 'm'));

    const deleted = await cli(['gateway-routes', 'delete', route.id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await cli(['gateway-routes', 'show', route.id])).code, 3);

    await inDatabase(async (db) => {
      assert.deepEqual(
        (await auditEvents(db, route.id)).map((event) => [event.type, event.actor]),
        [
          ['gateway_route.created', 'cli'],
          ['gateway_route.updated', 'cli'],
          ['gateway_route.deleted', 'cli'],
        ],
      );
    });
  });

  test('identity-providers create, update, show, list and delete: the secret from GATEHOUSE_CLIENT_SECRET or stdin, never a flag, sealed and never printed', async () => {
    const secret = `upstream-${randomBytes(12).toString('hex')}`;
    const flag = await cli(['identity-providers', 'create', '--name', 'Corp', '--issuer', 'https://login.corp.test', '--client-id', 'gh', '--client-secret', secret]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /^gatehouse: unknown option --client-secret\n/);
    const none = await cli(['identity-providers', 'create', '--name', 'Corp', '--issuer', 'https://login.corp.test', '--client-id', 'gh']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no client secret: set GATEHOUSE_CLIENT_SECRET or pipe it on stdin/);
    const refused = await cli(['identity-providers', 'create', '--name', 'Corp', '--issuer', 'http://10.0.0.1', '--client-id', 'gh', '--scope', 'email', '--role-mapping', 'admin=groups=ops'], {
      env: { GATEHOUSE_CLIENT_SECRET: secret },
    });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /#\/issuer: must use https .*\(--issuer\)/);
    assert.match(refused.stderr, /#\/scopes: must include openid .*\(--scope\)/);

    const created = await cli(
      [
        'identity-providers',
        'create',
        '--name',
        'Corp SSO',
        '--issuer',
        'https://login.corp.test',
        '--client-id',
        'gatehouse',
        '--email-domain',
        'Corp.Test',
        '--role-mapping',
        'billing:admin=groups=billing=admins',
        '--username-claim',
        'upn',
        '--link-by-verified-email',
        '--json',
      ],
      { env: { GATEHOUSE_CLIENT_SECRET: secret } },
    );
    assert.equal(created.code, 0, created.stderr);
    assert.ok(!created.stdout.includes(secret));
    const provider = JSON.parse(created.stdout) as { id: string; client_secret_set: boolean; email_domains: string[]; role_mappings: unknown[]; claim_mappings: unknown; redirect_uri: string };
    assert.equal(provider.client_secret_set, true);
    assert.deepEqual(provider.email_domains, ['corp.test']);
    assert.deepEqual(provider.role_mappings, [{ role: 'billing:admin', claim: 'groups', value: 'billing=admins' }]);
    assert.deepEqual(provider.claim_mappings, { username: 'upn' });
    assert.equal(provider.redirect_uri, `${ISSUER}/federation/${provider.id}/callback`);

    const fromStdin = `piped-${randomBytes(12).toString('hex')}`;
    const updated = await cli(['identity-providers', 'update', provider.id, '--new-client-secret', '--enabled', 'false', '--json'], { stdin: `${fromStdin}\n` });
    assert.equal(updated.code, 0, updated.stderr);
    assert.equal((JSON.parse(updated.stdout) as { enabled: boolean }).enabled, false);
    const sealed = await inDatabase(async (db) => (await db.query<{ s: string }>('SELECT client_secret_sealed AS s FROM identity_providers WHERE id = $1', [provider.id])).rows[0]!.s);
    assert.ok(!sealed.includes(fromStdin) && !sealed.includes(secret));
    assert.equal(createEnvelope(Buffer.from(env['MASTER_KEY']!, 'base64url')).open(sealed, `identity_providers:${provider.id}`).toString(), fromStdin);

    const removed = await cli(['identity-providers', 'update', provider.id, '--remove-client-secret']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^client_secret_set: +false$/m);
    const shown = await cli(['identity-providers', 'show', provider.id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^issuer: +https:\/\/login\.corp\.test$/m);
    const listed = await cli(['identity-providers', 'list']);
    assert.match(listed.stdout, /^ID +NAME +ISSUER +EMAIL_DOMAINS +ENABLED +SECRET$/m);
    assert.match(listed.stdout, new RegExp(`^${provider.id} +Corp SSO +https://login\\.corp\\.test +corp\\.test +no +no$`, 'm'));

    const deleted = await cli(['identity-providers', 'delete', provider.id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await cli(['identity-providers', 'show', provider.id])).code, 3);

    await inDatabase(async (db) => {
      assert.deepEqual(
        (await auditEvents(db, provider.id)).map((event) => [event.type, event.actor]),
        [
          ['identity_provider.created', 'cli'],
          ['identity_provider.updated', 'cli'],
          ['identity_provider.updated', 'cli'],
          ['identity_provider.deleted', 'cli'],
        ],
      );
      const { rows } = await db.query<{ details: unknown }>("SELECT details FROM audit_events WHERE type LIKE 'identity_provider.%'");
      for (const row of rows) assert.ok(!JSON.stringify(row.details).includes(secret) && !JSON.stringify(row.details).includes(fromStdin));
    });
  });

  test('clients create prints client_id and client_secret once; the database holds a hash and a client.created event by cli', async () => {
    const created = await cli(['clients', 'create', '--name', 'billing-worker', '--grant', 'client_credentials', '--resource', 'https://billing.test', '--scope', 'invoices:read refunds:create']);
    assert.equal(created.code, 0, created.stderr);
    const match = /^client_id: +(\S+)\nclient_secret: +(\S+)\n$/.exec(created.stdout);
    assert.ok(match, created.stdout);
    clientId = match[1]!;
    const secret = match[2]!;
    assert.match(secret, /^[\w-]{43}$/);
    assert.match(created.stderr, /not shown again/);

    // Checked against the resource servers in the database, so after it was opened: still exit 2.
    const unknown = await cli(['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--resource', 'https://nowhere.test', '--scope', 'invoices:read']);
    assert.equal(unknown.code, 2);
    assert.equal(
      unknown.stderr,
      'gatehouse: #/allowed_resources/0: no resource server has this identifier (--resource)\ngatehouse: #/scope: not defined by the allowed resource servers: invoices:read (--scope)\n',
    );

    const listed = await cli(['clients', 'list', '--name-prefix', 'billing', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const page = JSON.parse(listed.stdout) as { items: { client_id: string; scope: string; allowed_resources: string[] }[]; next_cursor: string | null };
    assert.deepEqual(
      page.items.map((client) => [client.client_id, client.scope, client.allowed_resources]),
      [[clientId, 'invoices:read refunds:create', ['https://billing.test']]],
    );
    assert.equal(page.next_cursor, null);
    assert.doesNotMatch(listed.stdout, new RegExp(secret));

    await inDatabase(async (db) => {
      const { rows } = await db.query<{ client_secret_hash: string | null; metadata: { grant_types: string[] } }>('SELECT client_secret_hash, metadata FROM clients WHERE client_id = $1', [clientId]);
      const row = rows[0];
      assert.ok(row?.client_secret_hash);
      assert.ok(!row.client_secret_hash.includes(secret), 'the secret is stored only as a hash');
      assert.deepEqual(row.metadata.grant_types, ['client_credentials']);
      const events = await auditEvents(db, clientId);
      assert.deepEqual(
        events.map((event) => [event.type, event.actor]),
        [['client.created', 'cli']],
      );
      assert.match(events[0]!.request_id ?? '', /^[0-9a-f-]{36}$/);
    });
  });

  test('clients rotate-secret prints a new secret once; clients delete, then not found exits 3', async () => {
    const before = await inDatabase(async (db) => (await db.query<{ h: string }>('SELECT client_secret_hash AS h FROM clients WHERE client_id = $1', [clientId])).rows[0]?.h);
    const rotated = await cli(['clients', 'rotate-secret', clientId, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const body = JSON.parse(rotated.stdout) as { client_id: string; client_secret: string; client_secret_expires_at: number };
    assert.equal(body.client_id, clientId);
    assert.match(body.client_secret, /^[\w-]{43}$/);
    assert.equal(body.client_secret_expires_at, 0);
    await inDatabase(async (db) => {
      const after = (await db.query<{ h: string }>('SELECT client_secret_hash AS h FROM clients WHERE client_id = $1', [clientId])).rows[0]?.h;
      assert.ok(before && after && after !== before, 'a new hash replaces the old one');
      assert.ok(!after.includes(body.client_secret));
    });

    const deleted = await cli(['clients', 'delete', clientId]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted client ${clientId}\n`);
    const again = await cli(['clients', 'delete', clientId]);
    assert.equal(again.code, 3);
    assert.equal(again.stderr, 'gatehouse: no client with that client_id\n');

    await inDatabase(async (db) => {
      assert.equal((await db.query('SELECT 1 FROM clients WHERE client_id = $1', [clientId])).rowCount, 0);
      assert.deepEqual(
        (await auditEvents(db, clientId)).map((event) => [event.type, event.actor]),
        [
          ['client.created', 'cli'],
          ['client.secret_rotated', 'cli'],
          ['client.deleted', 'cli'],
        ],
      );
    });
  });

  let aliceId = '';

  test('users create takes the password from GATEHOUSE_PASSWORD or stdin, never a flag; disable and reset-mfa', async () => {
    const fromEnvironment = await cli(['users', 'create', '--username', 'alice', '--email', 'alice@example.com', '--role', 'admin', '--role', 'ops', '--json'], {
      env: { GATEHOUSE_PASSWORD: 'correct horse battery staple' },
    });
    assert.equal(fromEnvironment.code, 0, fromEnvironment.stderr);
    const alice = JSON.parse(fromEnvironment.stdout) as { id: string; username: string; roles: string[]; disabled: boolean };
    aliceId = alice.id;
    assert.deepEqual([alice.username, alice.roles, alice.disabled], ['alice', ['admin', 'ops'], false]);

    const fromStdin = await cli(['users', 'create', '--username', 'bob', '--mfa-required'], { stdin: 'piped password, twelve+\n' });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.match(fromStdin.stdout, /^username: +bob$/m);
    assert.match(fromStdin.stdout, /^mfa_required: +true$/m);

    const taken = await cli(['users', 'create', '--username', 'ALICE'], { env: { GATEHOUSE_PASSWORD: 'another long password' } });
    assert.equal(taken.code, 4);
    assert.match(taken.stderr, /^gatehouse: a user with that username already exists\ngatehouse: #\/username: already taken/);

    const password = await cli(['users', 'create', '--password', 'hunter2hunter2', '--username', 'carol']);
    assert.equal(password.code, 2);
    assert.match(password.stderr, /^gatehouse: unknown option --password\n/);

    const disabled = await cli(['users', 'disable', aliceId]);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match(disabled.stdout, /^disabled: +true$/m);
    const reset = await cli(['users', 'reset-mfa', aliceId, '--json']);
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal((JSON.parse(reset.stdout) as { mfa_enrolled: boolean }).mfa_enrolled, false);
    const missing = await cli(['users', 'disable', '00000000-0000-4000-8000-000000000000']);
    assert.equal(missing.code, 3);
    assert.equal(missing.stderr, 'gatehouse: no user with that id\n');

    await inDatabase(async (db) => {
      const { rows } = await db.query<{ username: string; password_hash: string; disabled: boolean }>('SELECT username, password_hash, disabled FROM users ORDER BY username');
      assert.deepEqual(
        rows.map((row) => [row.username, row.disabled]),
        [
          ['alice', true],
          ['bob', false],
        ],
      );
      for (const row of rows) assert.match(row.password_hash, /^\$argon2id\$/);
      assert.deepEqual(
        (await auditEvents(db, aliceId)).map((event) => [event.type, event.actor]),
        [
          ['user.created', 'cli'],
          ['user.disabled', 'cli'],
          ['mfa.reset', 'cli'],
        ],
      );
    });
  });

  test('admin-client create makes a client with every admin scope for <ISSUER>/admin and prints its secret once', async () => {
    const created = await cli(['admin-client', 'create', '--name', 'deploy pipeline']);
    assert.equal(created.code, 0, created.stderr);
    const match = /^client_id: +(\S+)\nclient_secret: +([\w-]{43})\n$/.exec(created.stdout);
    assert.ok(match, created.stdout);
    const [, adminId = '', secret = ''] = match;

    const shown = await cli(['clients', 'show', adminId, '--json']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.doesNotMatch(shown.stdout, new RegExp(secret));
    const client = JSON.parse(shown.stdout) as { client_name: string; grant_types: string[]; scope: string; allowed_resources: string[] };
    assert.deepEqual(client.grant_types, ['client_credentials']);
    assert.deepEqual(client.scope.split(' ').sort(), [...ADMIN_SCOPES].sort());
    assert.deepEqual(client.allowed_resources, [`${ISSUER}/admin`]);
    assert.equal(client.client_name, 'deploy pipeline');

    await inDatabase(async (db) => {
      assert.deepEqual(
        (await auditEvents(db, adminId)).map((event) => [event.type, event.actor]),
        [['client.created', 'cli']],
      );
    });
  });

  test('audit tail shows the newest events oldest first, one line each; --json is JSON Lines', async () => {
    const tail = await cli(['audit', 'tail', '--limit', '3']);
    assert.equal(tail.code, 0, tail.stderr);
    const lines = tail.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z +user\\.disabled +cli +${aliceId} +success$`));
    assert.match(lines[1]!, new RegExp(`^\\S+ +mfa\\.reset +cli +${aliceId} +success$`));
    assert.match(lines[2]!, /^\S+ +client\.created +cli +\S+ +success$/);

    const json = await cli(['audit', 'tail', '--type', 'client.created', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const events = json.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; type: string; actor: string; details: Record<string, unknown> });
    assert.equal(events.length, 2);
    assert.ok(events.every((event) => event.type === 'client.created' && event.actor === 'cli'));
    assert.ok(BigInt(events[0]!.id) < BigInt(events[1]!.id), 'oldest first');
    assert.deepEqual(events[1]!.details['allowed_resources'], [`${ISSUER}/admin`]);
  });

  test('audit tail --follow prints newer events as they come and exits 0 on SIGTERM', async () => {
    const follow = spawnGatehouse(env, 'cli', ['audit', 'tail', '--limit', '1', '--follow', '--json']);
    try {
      await waitFor(() => follow.output.stdout.includes('"client.created"'), 60_000);
      if (database.backend === 'postgres') {
        // PGlite is one process at a time; on PostgreSQL a second CLI can write while the first follows.
        const created = await cli(['resource-servers', 'create', '--identifier', 'https://followed.test', '--name', 'Followed']);
        assert.equal(created.code, 0, created.stderr);
        await waitFor(() => follow.output.stdout.includes('"resource_server.created"'), 15_000);
      }
    } finally {
      follow.kill('SIGTERM');
    }
    assert.equal(await follow.exited, 0, follow.output.stderr);
    const types = follow.output.stdout
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as { type: string }).type);
    assert.deepEqual(types, database.backend === 'postgres' ? ['client.created', 'resource_server.created'] : ['client.created']);
  });

  // SPEC §8 clients, after the audit tail tests (which count client.created events).
  interface ShownClient {
    token_endpoint_auth_method: string;
    tls_client_auth_subject_dn?: string;
    tls_client_certificate_bound_access_tokens: boolean;
    dpop_bound_access_tokens: boolean;
    jwks?: { keys: Record<string, unknown>[] };
    grant_types: string[];
    allowed_resources: string[];
    token_exchange?: { subject_audiences: string[] };
    redirect_uris?: string[];
  }

  async function shownClient(id: string): Promise<ShownClient> {
    const shown = await cli(['clients', 'show', id, '--json']);
    assert.equal(shown.code, 0, shown.stderr);
    return JSON.parse(shown.stdout) as ShownClient;
  }

  test('clients create --auth-method tls_client_auth --tls-subject-dn --certificate-bound-tokens: no secret, the settings listed, read back by clients show', async () => {
    const dn = 'CN=orders-worker,O=Example Corp\\, Ltd';
    const created = await cli([
      'clients',
      'create',
      '--name',
      'orders-worker',
      '--grant',
      'client_credentials',
      '--auth-method',
      'tls_client_auth',
      '--tls-subject-dn',
      dn,
      '--certificate-bound-tokens',
      '--resource',
      'https://billing.test',
      '--scope',
      'invoices:read',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const match = /^client_id: +(\S+)\ntoken_endpoint_auth_method: +tls_client_auth\ntls_client_auth_subject_dn: +(.+)\ntls_client_certificate_bound_access_tokens: +true\n$/.exec(created.stdout);
    assert.ok(match, created.stdout);
    assert.equal(match[2], dn);
    assert.doesNotMatch(created.stdout + created.stderr, /client_secret|not shown again/, 'a certificate client has no secret');
    const id = match[1]!;

    const client = await shownClient(id);
    assert.equal(client.token_endpoint_auth_method, 'tls_client_auth');
    assert.equal(client.tls_client_auth_subject_dn, dn);
    assert.equal(client.tls_client_certificate_bound_access_tokens, true);
    assert.equal(client.dpop_bound_access_tokens, false);
    const human = await cli(['clients', 'show', id]);
    assert.match(human.stdout, /^tls_client_auth_subject_dn: +CN=orders-worker,O=Example Corp\\, Ltd$/m);
    assert.match(human.stdout, /^tls_client_certificate_bound_access_tokens: +true$/m);

    await inDatabase(async (db) => {
      const { rows } = await db.query<{ client_secret_hash: string | null; metadata: Record<string, unknown> }>('SELECT client_secret_hash, metadata FROM clients WHERE client_id = $1', [id]);
      assert.equal(rows[0]?.client_secret_hash, null);
      assert.equal(rows[0]?.metadata['tls_client_auth_subject_dn'], dn);
      assert.equal(rows[0]?.metadata['tls_client_certificate_bound_access_tokens'], true);
      assert.deepEqual(
        (await auditEvents(db, id)).map((event) => [event.type, event.actor]),
        [['client.created', 'cli']],
      );
    });
  });

  test('clients create --auth-method self_signed_tls_client_auth --certificate-file registers the openssl certificate as a JWK with x5c', async () => {
    const pki = await createPki();
    try {
      const [current, next] = await Promise.all([pki.selfSigned('edge-agent', '/CN=edge agent'), pki.selfSigned('edge-agent-next', '/CN=edge agent')]);
      const created = await cli([
        'clients',
        'create',
        '--name',
        'edge-agent',
        '--grant',
        'client_credentials',
        '--auth-method',
        'self_signed_tls_client_auth',
        '--certificate-file',
        current.certFile,
        '--certificate-file',
        next.certFile,
      ]);
      assert.equal(created.code, 0, created.stderr);
      // The fingerprints as `openssl x509 -noout -fingerprint -sha256` prints them, in the order given.
      const match = /^client_id: +(\S+)\ntoken_endpoint_auth_method: +self_signed_tls_client_auth\ncertificate_sha256: +(\S+) (\S+)\n$/.exec(created.stdout);
      assert.ok(match, created.stdout);
      assert.deepEqual([match[2], match[3]], [current.certificate.fingerprint256, next.certificate.fingerprint256]);

      const client = await shownClient(match[1]!);
      assert.equal(client.token_endpoint_auth_method, 'self_signed_tls_client_auth');
      // The same JWK the mTLS tests register by hand with jose (and authenticate with).
      const expected = await Promise.all(
        [current, next].map(async (issued) => ({ ...(await exportJWK(await importX509(issued.pem, 'ES256', { extractable: true }))), x5c: [issued.certificate.raw.toString('base64')] })),
      );
      assert.deepEqual(client.jwks, { keys: expected });
      assert.equal(client.tls_client_certificate_bound_access_tokens, false);

      // A certificate file is one certificate; a key is not one; a JWK Set without x5c cannot authenticate such a client.
      const bundle = path.join(pki.dir, 'bundle.pem');
      await writeFile(bundle, current.pem + next.pem);
      const noX5c = path.join(pki.dir, 'no-x5c.jwks');
      await writeFile(noX5c, JSON.stringify({ keys: [await exportJWK(await importX509(current.pem, 'ES256', { extractable: true }))] }));
      const base = ['clients', 'create', '--grant', 'client_credentials', '--auth-method', 'self_signed_tls_client_auth'];
      const [twoInOne, key, withoutX5c, both] = await Promise.all([
        cli([...base, '--certificate-file', bundle]),
        cli([...base, '--certificate-file', current.keyFile]),
        cli([...base, '--jwks-file', noX5c]),
        cli([...base, '--jwks-file', noX5c, '--certificate-file', current.certFile]),
      ]);
      for (const run of [twoInOne, key, withoutX5c, both]) {
        assert.equal(run.code, 2, run.stderr);
        assert.equal(run.stdout, '');
      }
      assert.match(twoInOne.stderr, /^gatehouse: --certificate-file: \S+bundle\.pem holds 2 certificates; give one file per certificate\n/);
      assert.match(key.stderr, /^gatehouse: --certificate-file: \S+edge-agent\.key is not an X\.509 certificate \(PEM or DER\)\n/);
      assert.equal(withoutX5c.stderr, 'gatehouse: #/jwks: self_signed_tls_client_auth needs a key whose x5c holds the certificate (--jwks-file or --certificate-file)\n');
      assert.match(both.stderr, /^gatehouse: give --jwks-file or --certificate-file, not both\n/);
    } finally {
      await pki.close();
    }
  });

  test('clients create --dpop-bound-tokens: a public client whose every token request needs a DPoP proof', async () => {
    const created = await cli(['clients', 'create', '--name', 'spa', '--grant', 'authorization_code', '--grant', 'refresh_token', '--auth-method', 'none', '--redirect-uri', 'https://app.test/callback', '--dpop-bound-tokens', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const body = JSON.parse(created.stdout) as ShownClient & { client_id: string; client_secret?: string };
    assert.equal(body.dpop_bound_access_tokens, true);
    assert.equal(body.tls_client_certificate_bound_access_tokens, false);
    assert.equal(body.client_secret, undefined);

    const client = await shownClient(body.client_id);
    assert.equal(client.token_endpoint_auth_method, 'none');
    assert.equal(client.dpop_bound_access_tokens, true);
    await inDatabase(async (db) => {
      const { rows } = await db.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM clients WHERE client_id = $1', [body.client_id]);
      assert.equal(rows[0]?.metadata['dpop_bound_access_tokens'], true);
    });

    // Human output: the setting after client_id, no secret line for a public client.
    const plain = await cli(['clients', 'create', '--name', 'spa-2', '--auth-method', 'none', '--redirect-uri', 'https://app.test/callback', '--dpop-bound-tokens']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^client_id: +\S+\ndpop_bound_access_tokens: +true\n$/);
  });

  test('clients create --grant device-code: a public command-line tool with no redirect URI; --require-par: a client that must push', async () => {
    const created = await cli(['clients', 'create', '--name', 'deploy-cli', '--grant', 'device-code', '--grant', 'refresh_token', '--auth-method', 'none', '--scope', 'openid offline_access', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const body = JSON.parse(created.stdout) as ShownClient & { client_id: string; client_secret?: string };
    assert.deepEqual(body.grant_types, ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token']);
    assert.deepEqual(body.redirect_uris, []);
    assert.equal(body.client_secret, undefined);
    const shown = await shownClient(body.client_id);
    assert.equal(shown.token_endpoint_auth_method, 'none');

    const pushed = await cli(['clients', 'create', '--name', 'bank', '--redirect-uri', 'https://bank.test/cb', '--require-par', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const bank = JSON.parse(pushed.stdout) as { client_id: string; require_pushed_authorization_requests: boolean };
    assert.equal(bank.require_pushed_authorization_requests, true);
    await inDatabase(async (db) => {
      const { rows } = await db.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM clients WHERE client_id = $1', [bank.client_id]);
      assert.equal(rows[0]?.metadata['require_pushed_authorization_requests'], true);
    });
  });

  test('clients create --grant token-exchange --exchange-subject-audience: the orders service exchanges its tokens for payments ones, read back by clients show', async () => {
    for (const [identifier, name, scope] of [
      ['https://orders.test', 'Orders', 'orders:read'],
      ['https://payments.test', 'Payments', 'payments:charge'],
      ['https://ledger.test', 'Ledger', 'ledger:read'],
    ] as const) {
      const server = await cli(['resource-servers', 'create', '--identifier', identifier, '--name', name, '--scope', scope]);
      assert.equal(server.code, 0, server.stderr);
    }
    const created = await cli([
      'clients',
      'create',
      '--name',
      'orders-to-payments',
      '--grant',
      'token-exchange',
      '--exchange-subject-audience',
      'https://orders.test',
      '--exchange-subject-audience',
      'https://ledger.test',
      '--resource',
      'https://payments.test',
      '--scope',
      'payments:charge',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const match = /^client_id: +(\S+)\nclient_secret: +[\w-]{43}\ntoken_exchange\.subject_audiences: +https:\/\/orders\.test https:\/\/ledger\.test\n$/.exec(created.stdout);
    assert.ok(match, created.stdout);
    const id = match[1]!;

    const client = await shownClient(id);
    assert.deepEqual(client.grant_types, ['urn:ietf:params:oauth:grant-type:token-exchange']);
    assert.deepEqual(client.token_exchange, { subject_audiences: ['https://orders.test', 'https://ledger.test'] });
    assert.deepEqual(client.allowed_resources, ['https://payments.test']);
    await inDatabase(async (db) => {
      const { rows } = await db.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM clients WHERE client_id = $1', [id]);
      assert.deepEqual(rows[0]?.metadata['token_exchange'], { subject_audiences: ['https://orders.test', 'https://ledger.test'] });
      assert.deepEqual(
        (await auditEvents(db, id)).map((event) => [event.type, event.actor]),
        [['client.created', 'cli']],
      );
    });

    // The grant's URN works as well as its short name; --json carries token_exchange too.
    const urn = await cli([
      'clients',
      'create',
      '--grant',
      'client_credentials',
      '--grant',
      'urn:ietf:params:oauth:grant-type:token-exchange',
      '--exchange-subject-audience',
      'https://orders.test',
      '--resource',
      'https://payments.test',
      '--json',
    ]);
    assert.equal(urn.code, 0, urn.stderr);
    const body = JSON.parse(urn.stdout) as ShownClient & { client_secret?: string };
    assert.deepEqual(body.grant_types, ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']);
    assert.deepEqual(body.token_exchange, { subject_audiences: ['https://orders.test'] });
    assert.ok(body.client_secret);

    // A subject audience is checked against the resource servers in the database: still exit 2, naming the flag.
    const unknown = await cli(['clients', 'create', '--grant', 'token-exchange', '--exchange-subject-audience', 'https://nowhere.test', '--resource', 'https://payments.test']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.equal(unknown.stdout, '');
    assert.equal(unknown.stderr, 'gatehouse: #/token_exchange/subject_audiences/0: no resource server has this identifier (--exchange-subject-audience)\n');
  });

  test('users passkeys lists a person’s passkeys without public keys; users remove-passkey removes one, ends their sessions and is audited by cli', async () => {
    const publicKey = randomBytes(77);
    await inDatabase(async (db) => {
      const passkeys = createPasskeyStore(db);
      for (const [credentialId, name] of [
        ['cli-laptop', 'Laptop'],
        ['cli-phone', 'Phone'],
      ] as const) {
        assert.ok(await passkeys.insert({ credentialId, userId: aliceId, publicKey, signCount: 0, transports: ['internal'], backupEligible: false, backedUp: false, name }));
      }
      await createOidcModelStore(db).upsert('Session', 'cli-session', { accountId: aliceId, loginTs: Math.floor(Date.now() / 1000) }, 3600);
    });

    const listed = await cli(['users', 'passkeys', aliceId]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID +NAME +DEVICE_TYPE +BACKED_UP +CREATED_AT +LAST_USED_AT$/m);
    assert.match(listed.stdout, /^cli-laptop +Laptop +single_device +no +\S+ +never$/m);
    assert.match(listed.stdout, /^cli-phone +Phone /m);
    const json = await cli(['users', 'passkeys', aliceId, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { items: { id: string }[] }).items.map((item) => item.id), ['cli-laptop', 'cli-phone']);
    for (const output of [listed.stdout, json.stdout]) {
      assert.ok(!output.includes(publicKey.toString('base64url')) && !output.includes(publicKey.toString('base64')), 'a public key printed');
    }

    const removed = await cli(['users', 'remove-passkey', aliceId, 'cli-phone', '--json']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((JSON.parse(removed.stdout) as { passkeys: number }).passkeys, 1);
    const again = await cli(['users', 'remove-passkey', aliceId, 'cli-phone']);
    assert.equal(again.code, 3);
    assert.equal(again.stderr, 'gatehouse: the user has no passkey with that id\n');
    const missingUser = await cli(['users', 'passkeys', '00000000-0000-4000-8000-000000000000']);
    assert.equal(missingUser.code, 3);
    const usage = await cli(['users', 'remove-passkey', aliceId]);
    assert.equal(usage.code, 2);

    await inDatabase(async (db) => {
      const { rows } = await db.query<{ credential_id: string }>('SELECT credential_id FROM user_passkeys WHERE user_id = $1', [aliceId]);
      assert.deepEqual(rows.map((row) => row.credential_id), ['cli-laptop']);
      const sessions = await db.query('SELECT 1 FROM oidc_models WHERE account_id = $1', [aliceId]);
      assert.equal(sessions.rows.length, 0, 'the removal ended the session');
      const events = (await auditEvents(db, aliceId)).filter((event) => event.type === 'passkey.removed');
      assert.deepEqual(events.map((event) => event.actor), ['cli']);
    });
  });
});
