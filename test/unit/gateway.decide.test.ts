import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import type { GatewayRouteRow } from '../../src/db/gateway-routes.js';
import { decide, IDENTITY_HEADERS, type GatewayPerson, type GatewayPolicyDeps } from '../../src/gateway/decide.js';
import { createVerifier } from '../../src/verifier/index.js';
import { createSigningKey, type SigningKey } from '../support/fake-issuer.js';
import { SignJWT } from 'jose';

/**
 * The gateway's policy (SPEC §7) with real tokens and the real verifier (in-process keys, as the
 * gateway doors will use it): deny by default, RFC 6750 challenges, scopes, roles and second factor
 * from the person's row, identity headers always all present, personal data only on trusted routes.
 */

const ISSUER = 'https://id.gateway-policy.test';
const ORDERS = 'https://orders.gateway-policy.test';
const MFA = 'urn:gatehouse:acr:mfa';

function route(overrides: Partial<GatewayRouteRow> = {}): GatewayRouteRow {
  return {
    id: randomUUID(),
    seq: '1',
    host: 'api.example.test',
    path_prefix: '/orders',
    methods: null,
    resource_server: ORDERS,
    required_scopes: ['orders:read'],
    required_roles: [],
    require_mfa: false,
    anonymous: false,
    browser_sign_in: false,
    upstream_token: 'pass',
    upstream_resource_server: null,
    identity_headers: 'public',
    created_at: new Date(),
    updated_at: new Date(),
    ...overrides,
  };
}

describe('gateway policy', () => {
  let key: SigningKey;
  let deps: GatewayPolicyDeps;
  const people = new Map<string, GatewayPerson>();

  function mint(claims: Record<string, unknown>, audience = ORDERS, expiresIn = '5m'): Promise<string> {
    return new SignJWT({ client_id: 'shop', scope: 'orders:read', ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience(audience)
      .setSubject(typeof claims['sub'] === 'string' ? claims['sub'] : 'shop')
      .setIssuedAt()
      .setJti(randomUUID())
      .setExpirationTime(expiresIn)
      .sign(key.privateKey);
  }

  before(async () => {
    key = await createSigningKey('ES256');
    const verifiers = new Map<string, ReturnType<typeof createVerifier>>();
    deps = {
      async verify(token, audience) {
        let verifier = verifiers.get(audience);
        if (verifier === undefined) verifiers.set(audience, (verifier = createVerifier({ issuer: ISSUER, audience, jwks: () => ({ keys: [key.publicJwk] }) })));
        const { claims } = await verifier.verify(token);
        return { sub: claims.sub, client_id: claims.client_id, scope: claims.scope, acr: claims['acr'], exp: claims.exp };
      },
      person: (sub) => Promise.resolve(people.get(sub)),
      mfaAcr: MFA,
      upstreamToken: () => Promise.reject(new Error('no exchange routes in these cases')),
    };
    people.set('person-1', { username: 'ada', email: 'ada@example.test', name: 'Ada\r\nX-Injected: yes', roles: ['buyer', 'auditor'] });
  });

  test('no route: denied, whatever the credential', async () => {
    assert.deepEqual(await decide(deps, undefined, [`Bearer ${await mint({})}`]), { outcome: 'forbidden', reason: 'no_route' });
  });

  test('no token: 401 with a bare Bearer challenge; a malformed or repeated Authorization: invalid_request', async () => {
    assert.deepEqual(await decide(deps, route(), undefined), { outcome: 'unauthenticated', challenge: 'Bearer' });
    const token = await mint({});
    for (const authorization of [['Basic abc'], [`Bearer ${token}`, `Bearer ${token}`], ['Bearer a b']]) {
      const decision = await decide(deps, route(), authorization);
      assert.equal(decision.outcome, 'unauthenticated');
      assert.match((decision as { challenge: string }).challenge, /error="invalid_request"/);
    }
  });

  test('an expired, foreign-audience or forged token: invalid_token', async () => {
    const forger = await createSigningKey('ES256', key.kid);
    const forged = await new SignJWT({ client_id: 'shop', scope: 'orders:read' })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience(ORDERS)
      .setSubject('shop')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(forger.privateKey);
    for (const token of [await mint({}, ORDERS, '-1m'), await mint({}, 'https://billing.gateway-policy.test'), forged]) {
      const decision = await decide(deps, route(), [`Bearer ${token}`]);
      assert.equal(decision.outcome, 'unauthenticated');
      assert.match((decision as { challenge: string }).challenge, /^Bearer error="invalid_token"/);
    }
  });

  test('missing scope: 403 insufficient_scope naming the required scopes', async () => {
    const decision = await decide(deps, route({ required_scopes: ['orders:read', 'orders:write'] }), [`Bearer ${await mint({})}`]);
    assert.equal(decision.outcome, 'forbidden');
    assert.equal((decision as { reason: string }).reason, 'insufficient_scope');
    assert.match((decision as { challenge: string }).challenge, /error="insufficient_scope".*scope="orders:read orders:write"/);
  });

  test('allowed: every identity header present, public ones filled, personal ones empty on a public route', async () => {
    const decision = await decide(deps, route(), [`Bearer ${await mint({ sub: 'person-1', acr: MFA })}`]);
    assert.equal(decision.outcome, 'allow');
    const { headers } = decision as { headers: Record<string, string> };
    assert.deepEqual(Object.keys(headers).sort(), [...IDENTITY_HEADERS].sort());
    assert.equal(headers['X-Gatehouse-Subject'], 'person-1');
    assert.equal(headers['X-Gatehouse-Client-Id'], 'shop');
    assert.equal(headers['X-Gatehouse-Scope'], 'orders:read');
    assert.equal(headers['X-Gatehouse-Acr'], MFA);
    for (const personal of ['X-Gatehouse-Username', 'X-Gatehouse-Email', 'X-Gatehouse-Name', 'X-Gatehouse-Roles']) assert.equal(headers[personal], '', personal);
  });

  test('trusted route: personal data, with control characters taken out of header values', async () => {
    const decision = await decide(deps, route({ identity_headers: 'trusted' }), [`Bearer ${await mint({ sub: 'person-1' })}`]);
    const { headers } = decision as { headers: Record<string, string> };
    assert.equal(headers['X-Gatehouse-Username'], 'ada');
    assert.equal(headers['X-Gatehouse-Email'], 'ada@example.test');
    assert.equal(headers['X-Gatehouse-Name'], 'Ada X-Injected: yes');
    assert.equal(headers['X-Gatehouse-Roles'], 'buyer,auditor');
  });

  test('identity_headers none: every header present and empty', async () => {
    const decision = await decide(deps, route({ identity_headers: 'none' }), [`Bearer ${await mint({ sub: 'person-1' })}`]);
    assert.ok(Object.values((decision as { headers: Record<string, string> }).headers).every((value) => value === ''));
  });

  test('required roles and second factor come from the person; a client token or a gone person is refused', async () => {
    const buyers = route({ required_roles: ['admin', 'buyer'] });
    assert.equal((await decide(deps, buyers, [`Bearer ${await mint({ sub: 'person-1' })}`])).outcome, 'allow');
    assert.deepEqual(await decide(deps, route({ required_roles: ['admin'] }), [`Bearer ${await mint({ sub: 'person-1' })}`]), { outcome: 'forbidden', reason: 'role' });
    assert.deepEqual(await decide(deps, buyers, [`Bearer ${await mint({})}`]), { outcome: 'forbidden', reason: 'not_a_person' });
    assert.deepEqual(await decide(deps, buyers, [`Bearer ${await mint({ sub: 'person-gone' })}`]), { outcome: 'forbidden', reason: 'not_a_person' });
    const mfa = route({ require_mfa: true });
    assert.deepEqual(await decide(deps, mfa, [`Bearer ${await mint({ sub: 'person-1', acr: 'urn:gatehouse:acr:pwd' })}`]), { outcome: 'forbidden', reason: 'mfa' });
    assert.equal((await decide(deps, mfa, [`Bearer ${await mint({ sub: 'person-1', acr: MFA })}`])).outcome, 'allow');
  });

  test('an anonymous route lets a request through with every identity header empty, even with a token', async () => {
    const decision = await decide(deps, route({ anonymous: true, resource_server: null, required_scopes: [] }), [`Bearer ${await mint({ sub: 'person-1' })}`]);
    assert.equal(decision.outcome, 'allow');
    assert.ok(Object.values((decision as { headers: Record<string, string> }).headers).every((value) => value === ''));
  });
});
