import assert from 'node:assert/strict';
import { test } from 'node:test';

/** What a gateway test set up: the protected site, tokens, and what its echo upstream saw. */
export interface GatewayUnderTest {
  readonly site: string;
  readonly clientId: string;
  token(scope: string): Promise<string>;
  readonly reached: { method: string; url: string; headers: Record<string, string | string[] | undefined> }[];
}

/**
 * SPEC §7's behaviour through a real gateway, the same for every door: with a route for GET
 * /orders (orders:read) and POST /orders (orders:write) on the site's host.
 */
export function gatewayBehaviourTests(env: () => GatewayUnderTest): void {
  test('a token with the route scope reaches the upstream with identity headers; a client-sent X-Gatehouse-* never does', async () => {
    env().reached.length = 0;
    const response = await fetch(`${env().site}/orders/42?x=1`, {
      headers: { authorization: `Bearer ${await env().token('orders:read')}`, 'x-gatehouse-subject': 'admin', 'x-gatehouse-roles': 'gatehouse:admin' },
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'upstream');
    assert.equal(env().reached.length, 1);
    const { headers } = env().reached[0]!;
    assert.equal(headers['x-gatehouse-subject'], env().clientId);
    assert.equal(headers['x-gatehouse-client-id'], env().clientId);
    assert.equal(headers['x-gatehouse-scope'], 'orders:read');
    assert.equal(headers['x-gatehouse-roles'] ?? '', '', 'the client-sent roles header was overwritten');
  });

  test('no token: 401 with a Bearer challenge, and the upstream is not reached', async () => {
    env().reached.length = 0;
    const response = await fetch(`${env().site}/orders/42`);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer');
    const bad = await fetch(`${env().site}/orders/42`, { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(env().reached.length, 0);
  });

  test('a POST is checked as a POST: orders:read is not enough, orders:write is', async () => {
    env().reached.length = 0;
    const refused = await fetch(`${env().site}/orders`, { method: 'POST', headers: { authorization: `Bearer ${await env().token('orders:read')}` }, body: 'x' });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('www-authenticate') ?? '', /error="insufficient_scope".*scope="orders:write"/);
    assert.equal(env().reached.length, 0);
    const allowed = await fetch(`${env().site}/orders`, { method: 'POST', headers: { authorization: `Bearer ${await env().token('orders:write')}` }, body: 'x' });
    assert.equal(allowed.status, 200);
    assert.equal(env().reached.at(-1)?.method, 'POST');
  });

  test('a path no route covers is denied, and a prefix matches whole segments only', async () => {
    env().reached.length = 0;
    const bearer = { authorization: `Bearer ${await env().token('orders:read')}` };
    assert.equal((await fetch(`${env().site}/billing`, { headers: bearer })).status, 403);
    assert.equal((await fetch(`${env().site}/ordersx`, { headers: bearer })).status, 403);
    assert.equal(env().reached.length, 0);
  });
}
