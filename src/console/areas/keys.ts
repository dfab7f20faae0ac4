import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { ManagementServices } from '../../management/index.js';
import { ManagementError } from '../../management/errors.js';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { doneMessage, ERROR_STATUS } from '../forms.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §11, the console's signing keys: the list (SPEC §5's `GET /admin/v1/keys`, paged), a
 * rotation, and an emergency revocation behind a confirmation page; through the same key
 * service and audit as the admin API, the person as the actor.
 */

const PAGE_SIZE = 50;
/** The key service's own kid shape; anything else names no key. */
const KID = /^[\w-]{1,64}$/;

/** What a redirect after a change says; only these, so the query string cannot put words on the page. */
const DONE_MESSAGES = {
  rotated: 'Keys rotated: each algorithm’s next key now signs, and a fresh next key is published.',
  revoked: 'Key revoked: it has left the JWKS and the tokens it signed are refused.',
} as const;

type Keys = ManagementServices['keys'];

function one(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function keysArea(keys: Keys): ConsoleAreaModule {
  return {
    id: 'keys',
    register(router: Router, kit: ConsoleKit) {
      const areaUrl = `${kit.consoleUrl}/keys`;
      // Matched below ISSUER's path, which a proxy in front strips (links use areaUrl).
      const routePath = `${CONSOLE_PATH}/keys`;

      async function showList(ctx: ParameterizedContext, extra: { error?: string; status?: number } = {}): Promise<void> {
        const cursor = one(ctx.query['cursor']);
        const page = await keys.list({ limit: PAGE_SIZE, cursor: cursor !== undefined && cursor.length <= 200 ? cursor : undefined }).catch((error: unknown) => {
          // A stale or forged cursor: the first page instead of an error.
          if (error instanceof ManagementError) return keys.list({ limit: PAGE_SIZE });
          throw error;
        });
        const done = one(ctx.query['done']);
        const kid = one(ctx.query['kid']);
        const message = doneMessage(DONE_MESSAGES, done);
        kit.render(
          ctx,
          'console-keys',
          {
            title: 'Signing keys',
            keys: page.items.map((key) => ({ ...key, created: `${key.created_at.slice(0, 16).replace('T', ' ')} UTC`, revokeHref: key.status === 'revoked' ? undefined : `${areaUrl}/${encodeURIComponent(key.kid)}/revoke` })),
            rotateAction: `${areaUrl}/rotate`,
            more: page.next_cursor === null ? undefined : `${areaUrl}?${new URLSearchParams({ cursor: page.next_cursor }).toString()}`,
            message,
            messageKid: message !== undefined && kid !== undefined && KID.test(kid) ? kid : undefined,
            error: extra.error,
          },
          extra.status,
        );
      }

      function showRevoke(ctx: ParameterizedContext, kid: string, error?: string, status?: number): void {
        kit.render(ctx, 'console-keys-revoke', { title: 'Revoke signing key', kid, action: `${areaUrl}/${encodeURIComponent(kid)}/revoke`, cancelHref: areaUrl, error }, status);
      }

      function notFound(ctx: ParameterizedContext): void {
        kit.render(ctx, 'console-keys-revoke', { title: 'Signing key not found', kid: undefined, cancelHref: areaUrl, error: 'No signing key with that kid.' }, 404);
      }

      router.get(routePath, kit.requireArea('keys'), async function listKeys(ctx) {
        await showList(ctx);
      });

      router.post(`${routePath}/rotate`, kit.requireArea('keys'), async function rotateKeys(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        try {
          await keys.rotate(undefined, kit.audit(ctx));
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          return showList(ctx, { error: error.message, status: ERROR_STATUS[error.code] });
        }
        kit.redirect(ctx, `${areaUrl}?done=rotated`);
      });

      router.get(`${routePath}/:kid/revoke`, kit.requireArea('keys'), function confirmRevoke(ctx) {
        const kid = ctx.params['kid'] ?? '';
        if (!KID.test(kid)) return notFound(ctx);
        showRevoke(ctx, kid);
      });

      router.post(`${routePath}/:kid/revoke`, kit.requireArea('keys'), async function revokeKey(ctx) {
        const kid = ctx.params['kid'] ?? '';
        const form = await kit.form(ctx);
        if (form === undefined) return;
        if (!KID.test(kid)) return notFound(ctx);
        try {
          await keys.revoke(kid, kit.audit(ctx));
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          return showRevoke(ctx, kid, error.message, ERROR_STATUS[error.code]);
        }
        kit.redirect(ctx, `${areaUrl}?${new URLSearchParams({ done: 'revoked', kid }).toString()}`);
      });
    },
  };
}
