import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GatewayRouteRow } from '../../src/db/gateway-routes.js';
import { buildRouteMatcher } from '../../src/gateway/route-table.js';

/** SPEC §7: the most specific host and the longest prefix win; a request no route matches is denied. */

let seq = 0;
function row(id: string, host: string, pathPrefix: string, methods: string[] | null = null): GatewayRouteRow {
  seq += 1;
  return {
    id,
    seq: String(seq),
    host,
    path_prefix: pathPrefix,
    methods,
    resource_server: 'https://api.example.com',
    required_scopes: [],
    required_roles: [],
    require_mfa: false,
    anonymous: false,
    browser_sign_in: false,
    upstream_token: 'pass',
    upstream_resource_server: null,
    identity_headers: 'public',
    created_at: new Date(0),
    updated_at: new Date(0),
  };
}

function matcher(...rows: GatewayRouteRow[]) {
  const match = buildRouteMatcher(rows);
  return (host: string, path: string, method = 'GET') => match({ host, path, method })?.id;
}

describe('gateway route matching', () => {
  test('an exact host beats a wildcard, whichever was created first and whatever its prefix', () => {
    const match = matcher(row('wild', '*.example.com', '/api/orders'), row('exact', 'api.example.com', '/'));
    assert.equal(match('api.example.com', '/api/orders/1'), 'exact');
    assert.equal(match('www.example.com', '/api/orders/1'), 'wild');
  });

  test('a longer wildcard suffix beats a shorter one; a wildcard does not cover the bare domain', () => {
    const match = matcher(row('short', '*.example.com', '/'), row('long', '*.eu.example.com', '/'));
    assert.equal(match('shop.eu.example.com', '/'), 'long');
    assert.equal(match('shop.example.com', '/'), 'short');
    assert.equal(match('a.b.example.com', '/'), 'short');
    assert.equal(match('example.com', '/'), undefined);
  });

  test('hosts match case-insensitively, with a trailing dot, and a route with a port only on that port', () => {
    const match = matcher(row('any-port', 'api.example.com', '/'), row('port', 'api.example.com:8443', '/'));
    assert.equal(match('API.Example.COM', '/'), 'any-port');
    assert.equal(match('api.example.com.', '/'), 'any-port');
    assert.equal(match('api.example.com:8443', '/'), 'port');
    assert.equal(match('api.example.com:9000', '/'), 'any-port');
  });

  test('the longest path prefix wins', () => {
    const match = matcher(row('root', 'api.example.com', '/'), row('api', 'api.example.com', '/api'), row('orders', 'api.example.com', '/api/orders'));
    assert.equal(match('api.example.com', '/api/orders/7'), 'orders');
    assert.equal(match('api.example.com', '/api/users'), 'api');
    assert.equal(match('api.example.com', '/health'), 'root');
  });

  test('a prefix matches on a segment boundary: /api covers /api and /api/x, not /apix', () => {
    const match = matcher(row('api', 'api.example.com', '/api'), row('slash', 'api.example.com', '/v2/'));
    assert.equal(match('api.example.com', '/api'), 'api');
    assert.equal(match('api.example.com', '/api/'), 'api');
    assert.equal(match('api.example.com', '/api/x'), 'api');
    assert.equal(match('api.example.com', '/apix'), undefined);
    assert.equal(match('api.example.com', '/v2/x'), 'slash');
    assert.equal(match('api.example.com', '/v2'), undefined);
  });

  test('methods: a route naming methods covers only those; null covers all; the named one wins a tie', () => {
    const match = matcher(row('all', 'api.example.com', '/api'), row('writes', 'api.example.com', '/api', ['DELETE', 'POST']));
    assert.equal(match('api.example.com', '/api', 'POST'), 'writes');
    assert.equal(match('api.example.com', '/api', 'post'), 'writes');
    assert.equal(match('api.example.com', '/api', 'GET'), 'all');
    const only = matcher(row('reads', 'api.example.com', '/api', ['GET', 'HEAD']));
    assert.equal(only('api.example.com', '/api', 'HEAD'), 'reads');
    assert.equal(only('api.example.com', '/api', 'PUT'), undefined);
  });

  test('no route, another host or no routes at all: undefined (deny)', () => {
    assert.equal(matcher()('api.example.com', '/'), undefined);
    const match = matcher(row('api', 'api.example.com', '/api'));
    assert.equal(match('other.example.com', '/api'), undefined);
    assert.equal(match('api.example.com', '/'), undefined);
    assert.equal(match('api.example.com.evil.com', '/api'), undefined);
  });
});
