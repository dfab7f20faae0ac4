import type { JsonWebKey } from 'node:crypto';
import type { Middleware } from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Envelope } from '../crypto/envelope.js';
import type { Queryable } from '../db/database.js';
import { createSigningKeyStore } from '../db/signing-keys.js';
import { loadPublicJwks, loadSigningJwks } from './keys.js';

/**
 * Key rotation without restarts. oidc-provider builds its keystore once, at construction, so
 * when the published key set changes (a rotation on any instance, or a retired key expiring)
 * this host builds a new Provider with the new keys and swaps it in. Requests already inside
 * the old provider finish there; all state lives in the database, so nothing is lost.
 *
 * The database announces every committed key change (migrations/0008) and the server's
 * background work (src/background.ts) calls `refresh()` on it, so a rotation or revocation is
 * picked up at once everywhere; it also polls this cheap fingerprint of the key set, for changes
 * announced while it was not listening. The JWKS is served from the database (ops routes): a change is published
 * on every instance the moment it is committed, and an instance still signing with the previous
 * key for a moment signs with a key that is still published.
 */
export interface ProviderHost {
  /** The provider in service now. */
  current(): Provider;
  /** Public keys matching the current provider's keystore (for Gatehouse's own verifier). */
  publicJwks(): { keys: JsonWebKey[] };
  /** Koa middleware delegating to the current provider. */
  readonly middleware: Middleware;
  /** Reloads keys if they changed; resolves true when a new provider was swapped in. */
  refresh(): Promise<boolean>;
}

export async function createProviderHost(options: {
  readonly db: Queryable;
  readonly envelope: Envelope;
  readonly logger: Logger;
  /**
   * ISSUER's path ('' at the root): the provider's routes are served at the root of the app, and
   * the URLs it builds (ctx.oidc.urlFor) take this as their mount path, so they start with ISSUER.
   */
  readonly advertisedPath: string;
  readonly build: (jwks: { keys: JsonWebKey[] }) => Provider;
}): Promise<ProviderHost> {
  const keys = createSigningKeyStore(options.db);
  const load = async () => {
    const fingerprint = await keys.fingerprint();
    const [jwks, publicJwks] = await Promise.all([loadSigningJwks(options.db, options.envelope), loadPublicJwks(options.db)]);
    const provider = options.build(jwks);
    return { fingerprint, provider, mounted: mount(provider), publicJwks };
  };

  let state = await load();
  let refreshing: Promise<boolean> | undefined;

  const refresh = () =>
    (refreshing ??= (async () => {
      try {
        if ((await keys.fingerprint()) === state.fingerprint) return false;
        state = await load();
        options.logger.info({ keys: state.fingerprint }, 'signing keys changed: provider rebuilt');
        return true;
      } finally {
        refreshing = undefined;
      }
    })());

  return {
    current: () => state.provider,
    publicJwks: () => state.publicJwks,
    middleware: async function currentProvider(ctx, next) {
      if (options.advertisedPath !== '') (ctx as { mountPath?: string }).mountPath = options.advertisedPath;
      await state.mounted(ctx, next);
    },
    refresh,
  };
}
