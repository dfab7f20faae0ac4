import Router from '@koa/router';
import type { Queryable } from '../db/database.js';
import { ROUTER_METHODS } from '../http/errors.js';
import { loadPublicJwks } from './keys.js';

/**
 * The JWKS that discovery advertises (`jwks_uri`). It comes from the database, not from a
 * provider's keystore snapshot, so a rotated, next or revoked key is published on every instance
 * the moment it is committed (see src/oidc/provider-host.ts).
 */
export function jwksRoute(db: Queryable): Router {
  const router = new Router({ methods: [...ROUTER_METHODS] });
  router.get('/jwks', async function jwks(ctx) {
    const { keys } = await loadPublicJwks(db);
    ctx.type = 'application/jwk-set+json; charset=utf-8';
    ctx.set('Cache-Control', 'public, max-age=60');
    ctx.body = { keys };
  });
  return router;
}
