import { listQuery, pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, WITH_BODY, type RouteTable } from '../route.js';
import { keyRotationResponse, rotateKeysBody } from '../../management/keys/schema.js';
import { keyResponse } from '../../management/keys/service.js';

/** Token signing keys: `/admin/v1/keys` (SPEC §5), scope `admin:keys`. */

const SigningKey = named('SigningKey', keyResponse);
const SigningKeyPage = named('SigningKeyPage', pageOf(keyResponse), [SigningKey]);
const KeyRotationResult = named('KeyRotationResult', keyRotationResponse, [SigningKey]);
const KeyRotation = named('KeyRotation', rotateKeysBody);

export const keyRoutes: RouteTable = {
  tag: { name: 'Signing keys', description: 'The keys that sign tokens. Scope `admin:keys`.' },
  routes: [
    route({
      operationId: 'listKeys',
      method: 'get',
      path: '/keys',
      summary: 'List signing keys',
      description: 'Next, active, retired, expired and revoked keys; never private material.',
      scope: 'admin:keys',
      query: listQuery,
      response: { status: 200, description: 'A page of signing keys.', schema: SigningKeyPage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { keys }) => keys.list(query),
    }),
    route({
      operationId: 'rotateKeys',
      method: 'post',
      path: '/keys/rotate',
      summary: 'Rotate signing keys',
      description:
        'For each algorithm asked for (every algorithm without a body), the `next` key, published since the previous rotation, becomes active, and a fresh `next` key is published; so a verifier holding a JWKS fetched before the rotation knows the new key. The old keys stay published until every token they signed has expired.',
      scope: 'admin:keys',
      // Read as sent: no body rotates every algorithm, while a `null` body is refused.
      body: { schema: KeyRotation, required: false, example: { algs: ['ES256'] }, raw: true },
      response: { status: 201, description: 'The new active keys.', schema: KeyRotationResult },
      errors: [...WITH_BODY, ...AUTHENTICATED],
      handler: async ({ body, caller }, { keys }) => ({ items: await keys.rotate(body?.algs, caller) }),
    }),
    route({
      operationId: 'revokeKey',
      method: 'post',
      path: '/keys/{kid}/revoke',
      summary: 'Revoke a signing key (emergency)',
      description:
        'The key leaves the JWKS at once, on every instance; introspection answers `active: false` for the tokens it signed, and verifiers refuse them at their next JWKS refresh. Revoking the active key first makes the `next` key active and publishes a fresh `next`, so tokens keep being issued. No body is needed.',
      scope: 'admin:keys',
      params: { kid: { schema: keyResponse.shape.kid, description: 'The key’s `kid`.' } },
      response: { status: 200, description: 'The revoked key.', schema: SigningKey },
      errors: [...WITH_BODY, 404, 409, ...AUTHENTICATED],
      conflict: 'The key is already revoked.',
      handler: ({ params, caller }, { keys }) => keys.revoke(params.kid, caller),
    }),
  ],
};
