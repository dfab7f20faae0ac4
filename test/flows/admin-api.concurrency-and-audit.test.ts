import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminApi, adminToken, assertProblem, type AdminApi } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

describe('admin API: If-Match/ETag and the audit trail endpoint', () => {
  let server: TestServer;
  let api: AdminApi;

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:clients admin:resource-servers admin:users admin:audit'));
  });
  after(() => server.close());

  test('a PATCH with a stale ETag gets 412 and changes nothing; the fresh one wins', async () => {
    const created = await api.request<{ id: string }>('POST', '/resource-servers', { json: { identifier: 'https://etag.example', name: 'Before', scopes: ['a'] } });
    assert.equal(created.status, 201);
    const path = `/resource-servers/${created.body.id}`;
    const read = await api.request('GET', path);
    const etag = read.headers.get('etag');
    assert.match(etag ?? '', /^"[\w-]+"$/);
    // Admin one changes it.
    const first = await api.request<{ name: string }>('PATCH', path, { json: { name: 'First' }, headers: { 'If-Match': etag! } });
    assert.equal(first.status, 200);
    assert.notEqual(first.headers.get('etag'), etag);
    // Admin two still holds the old version: refused.
    const second = await api.request('PATCH', path, { json: { name: 'Second' }, headers: { 'If-Match': etag! } });
    assertProblem(second, 412, 'precondition-failed');
    assert.equal((await api.request<{ name: string }>('GET', path)).body.name, 'First');
    // Without If-Match (or with *) the change applies.
    assert.equal((await api.request('PATCH', path, { json: { name: 'Third' }, headers: { 'If-Match': '*' } })).status, 200);
    const list = await api.request<{ items: { name: string; created_at: string }[] }>('GET', '/resource-servers');
    assert.ok(list.body.items.some((item) => item.name === 'Third'));
  });

  test('users and clients carry ETags too', async () => {
    const user = await api.request<{ id: string }>('POST', '/users', { json: { username: 'etag-user', password: 'a long enough password' } });
    const userPath = `/users/${user.body.id}`;
    const userEtag = (await api.request('GET', userPath)).headers.get('etag')!;
    assert.equal((await api.request('PATCH', userPath, { json: { name: 'A' }, headers: { 'If-Match': userEtag } })).status, 200);
    assertProblem(await api.request('PATCH', userPath, { json: { name: 'B' }, headers: { 'If-Match': userEtag } }), 412, 'precondition-failed');

    const client = await api.request<{ client_id: string }>('POST', '/clients', { json: { client_name: 'etag', grant_types: ['client_credentials'] } });
    const clientPath = `/clients/${client.body.client_id}`;
    const clientEtag = (await api.request('GET', clientPath)).headers.get('etag')!;
    assertProblem(await api.request('PATCH', clientPath, { json: { client_name: 'x' }, headers: { 'If-Match': '"stale"' } }), 412, 'precondition-failed');
    assert.equal((await api.request('PATCH', clientPath, { json: { client_name: 'y' }, headers: { 'If-Match': `"other", ${clientEtag}` } })).status, 200);
  });

  test('audit events: newest first, filters, keyset pagination, no way to change them', async () => {
    const all = await api.request<{ items: { id: string; type: string; actor: string; occurred_at: string }[]; next_cursor: string | null }>('GET', '/audit-events?limit=200');
    assert.equal(all.status, 200);
    const ids = all.body.items.map((e) => BigInt(e.id));
    assert.ok(ids.length >= 5);
    assert.deepEqual(ids, [...ids].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)), 'newest first');

    const onlyUsers = await api.request<{ items: { type: string }[] }>('GET', '/audit-events?type=user.created');
    assert.ok(onlyUsers.body.items.length >= 1 && onlyUsers.body.items.every((e) => e.type === 'user.created'));
    const byActor = await api.request<{ items: { actor: string }[] }>('GET', `/audit-events?actor=${encodeURIComponent(server.admin.clientId)}`);
    assert.ok(byActor.body.items.every((e) => e.actor === server.admin.clientId));
    const future = await api.request<{ items: unknown[] }>('GET', `/audit-events?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    assert.deepEqual(future.body.items, []);

    // Walk two at a time: the same events, in the same order, each once.
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: { id: string }[]; next_cursor: string | null } } = await api.request('GET', `/audit-events?limit=2${cursor === null ? '' : `&cursor=${cursor}`}`);
      walked.push(...page.body.items.map((e) => e.id));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    assert.deepEqual(walked, all.body.items.map((e) => e.id));

    assertProblem(await api.request('GET', '/audit-events?since=yesterday'), 400, 'validation-failed');
    for (const method of ['POST', 'PATCH', 'DELETE', 'PUT']) {
      const response = await api.request(method, '/audit-events', method === 'DELETE' ? {} : { json: {} });
      assert.equal(response.status, 405, method);
    }
    const noScope = adminApi(server, await adminToken(server, 'admin:clients'));
    assertProblem(await noScope.request('GET', '/audit-events'), 403, 'forbidden');
  });

  test('committed events are also logged as JSON lines; a refused change logs none', async () => {
    const created = await api.request<{ id: string }>('POST', '/resource-servers', { json: { identifier: 'https://logged.example', name: 'Logged' } });
    const duplicate = await api.request('POST', '/resource-servers', { json: { identifier: 'https://logged.example', name: 'Again' } });
    assert.equal(duplicate.status, 409);
    const lines = server.logs.lines.map((line) => JSON.parse(line) as { msg?: string; reqId?: string; audit?: { type: string; target: string } });
    const audits = lines.filter((line) => line.msg === 'audit event');
    const forCreate = audits.filter((line) => line.reqId === created.requestId);
    assert.equal(forCreate.length, 1);
    assert.equal(forCreate[0]!.audit?.type, 'resource_server.created');
    assert.equal(forCreate[0]!.audit?.target, created.body.id);
    assert.equal(audits.filter((line) => line.reqId === duplicate.requestId).length, 0);
  });
});
