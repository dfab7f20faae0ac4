import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { GatewayRouteRow } from '../../src/db/gateway-routes.js';
import type { MintRequest } from '../../src/oidc/minted-access-tokens.js';
import { createUpstreamTokens } from '../../src/gateway/upstream-token.js';

/**
 * SPEC §7 exchange: what the gateway asks the minter for (exp at most 60 s and never past the
 * original's, the upstream resource server, the caller's identity), and when it reuses a token.
 */

function route(overrides: Partial<GatewayRouteRow> = {}): GatewayRouteRow {
  return {
    id: randomUUID(),
    seq: '1',
    host: 'api.example.test',
    path_prefix: '/',
    methods: null,
    resource_server: 'https://edge.example.test',
    required_scopes: [],
    required_roles: [],
    require_mfa: false,
    anonymous: false,
    browser_sign_in: false,
    upstream_token: 'exchange',
    upstream_resource_server: 'https://inner.example.test',
    identity_headers: 'public',
    created_at: new Date(0),
    updated_at: new Date(0),
    ...overrides,
  };
}

describe('upstream tokens for exchange routes', () => {
  let nowMs = 1_000_000_000_000;
  const asked: MintRequest[] = [];
  const tokens = createUpstreamTokens({
    now: () => nowMs,
    mint: (request) => {
      asked.push(request);
      return Promise.resolve({ value: `minted-${asked.length}`, exp: request.exp });
    },
  });
  const seconds = () => Math.floor(nowMs / 1000);
  const caller = () => ({ sub: 'person-1', client_id: 'web', scope: 'a b', acr: 'urn:gatehouse:acr:mfa', auth_time: 5, exp: seconds() + 900 });

  test('asks for the upstream resource server, the caller’s identity and at most 60 s', async () => {
    const r = route();
    assert.equal(await tokens('token-1', caller(), r), 'minted-1');
    assert.deepEqual(asked.at(-1), { sub: 'person-1', clientId: 'web', scope: 'a b', resource: 'https://inner.example.test', exp: seconds() + 60, acr: 'urn:gatehouse:acr:mfa', authTime: 5 });
    // Without an upstream resource server, the route's own.
    await tokens('token-1', caller(), route({ upstream_resource_server: null }));
    assert.equal(asked.at(-1)?.resource, 'https://edge.example.test');
  });

  test('never past the original token’s exp; nothing for an expired one', async () => {
    await tokens('token-2', { ...caller(), exp: seconds() + 12 }, route());
    assert.equal(asked.at(-1)?.exp, seconds() + 12);
    const before = asked.length;
    assert.equal(await tokens('token-3', { ...caller(), exp: seconds() }, route()), undefined);
    assert.equal(asked.length, before);
  });

  test('reused per credential and route while it has at least 10 s left; a new one after, or for another route or a changed route', async () => {
    const r = route();
    const first = await tokens('token-4', caller(), r);
    assert.equal(await tokens('token-4', caller(), r), first);
    assert.notEqual(await tokens('token-5', caller(), r), first, 'another credential');
    assert.notEqual(await tokens('token-4', caller(), route()), first, 'another route');
    assert.notEqual(await tokens('token-4', caller(), { ...r, updated_at: new Date(1) }), first, 'the route changed');
    nowMs += 49_000;
    assert.equal(await tokens('token-4', caller(), r), first, '11 s left');
    nowMs += 2_000;
    assert.notEqual(await tokens('token-4', caller(), r), first, '9 s left: a fresh one');
  });
});
