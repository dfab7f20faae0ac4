import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminApi, adminToken, createClient, createResourceServer, deleteClient, introspectToken, type ResourceServerBody } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §7 "Reference tokens outside": a resource server with `token_format: "reference"` gets
 * opaque access tokens from /token. Nothing readable leaves Gatehouse: the token is a random
 * string; only introspection (and the gateway) tell what it stands for, under the same rules as
 * for JWTs (the token's client, or a confidential client allowed for its resource server).
 */

const LEDGER = 'https://ledger.reference-tokens.test';
const OTHER = 'https://other.reference-tokens.test';

describe('reference tokens', () => {
  let server: TestServer;
  let admin: string;

  before(async () => {
    server = await startTestServer();
    admin = await adminToken(server, 'admin:clients admin:resource-servers');
  });
  after(() => server.close());

  test('a reference resource server is created and shown with its format; a bad format is a 400 on the field', async () => {
    const api = adminApi(server, admin);
    const created = await api.request<ResourceServerBody & { token_format: string }>('POST', '/resource-servers', { json: { identifier: LEDGER, name: 'Ledger', scopes: ['ledger:read'], token_format: 'reference' } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.token_format, 'reference');
    const plain = await createResourceServer(server, { identifier: OTHER, name: 'Other', scopes: ['other:read'] }, admin);
    assert.equal((plain as unknown as { token_format: string }).token_format, 'jwt');
    const bad = await api.request('POST', '/resource-servers', { json: { identifier: 'https://bad.reference-tokens.test', name: 'Bad', token_format: 'paseto' } });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /#\/token_format/);
  });

  test('/token answers an opaque token, which introspection resolves for the token’s client and for the resource server’s own client only', async () => {
    const caller = await createClient(server, { client_name: 'Ledger reader', allowed_resources: [LEDGER] }, admin);
    const config = new oidc.Configuration({ issuer: server.issuer, token_endpoint: `${server.url}/token` }, caller.client_id, caller.client_secret);
    oidc.allowInsecureRequests(config);
    const tokens = await oidc.clientCredentialsGrant(config, { resource: LEDGER, scope: 'ledger:read' });
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.doesNotMatch(tokens.access_token, /\./, 'no JWS or JWE: nothing readable');
    assert.ok(tokens.access_token.length >= 40);

    const own = await introspectToken(server, { client_id: caller.client_id, client_secret: caller.client_secret! }, tokens.access_token);
    assert.equal(own.status, 200);
    assert.equal(own.body['active'], true);
    assert.equal(own.body['client_id'], caller.client_id);
    assert.equal(own.body['sub'], caller.client_id);
    assert.equal(own.body['aud'], LEDGER);
    assert.equal(own.body['scope'], 'ledger:read');
    assert.equal(typeof own.body['exp'], 'number');

    const ledgerService = await createClient(server, { client_name: 'Ledger service', allowed_resources: [LEDGER] }, admin);
    const asResource = await introspectToken(server, { client_id: ledgerService.client_id, client_secret: ledgerService.client_secret! }, tokens.access_token);
    assert.equal(asResource.body['active'], true);
    const stranger = await createClient(server, { client_name: 'Stranger', allowed_resources: [OTHER] }, admin);
    const refused = await introspectToken(server, { client_id: stranger.client_id, client_secret: stranger.client_secret! }, tokens.access_token);
    assert.deepEqual(refused.body, { active: false });

    // The client gone, its reference tokens are inactive at once.
    await deleteClient(server, caller.client_id, admin);
    const afterDelete = await introspectToken(server, { client_id: ledgerService.client_id, client_secret: ledgerService.client_secret! }, tokens.access_token);
    assert.deepEqual(afterDelete.body, { active: false });
  });
});
