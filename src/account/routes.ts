import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { PASSKEY_NAME_MAX_LENGTH } from '../accounts/passkeys.js';
import type { OwnPasskey, OwnPasskeys } from '../accounts/own-passkeys.js';
import type { AuditContext } from '../audit/audit.js';
import type { Csrf } from '../http/csrf.js';
import { ROUTER_METHODS } from '../http/errors.js';
import type { FirstPartySession, FirstPartySignIn } from '../http/first-party-sign-in.js';
import { FormError, readForm } from '../http/form.js';
import { PASSKEY_PAGE_CONTENT_SECURITY_POLICY } from '../http/security-headers.js';
import { ACCOUNT_PASSKEYS_PATH, ACCOUNT_PATH } from '../oidc/account-client.js';
import type { Views } from '../views.js';

/**
 * The account pages (SPEC §4): `<ISSUER>/account/passkeys`, where a signed-in person lists,
 * adds, renames and removes their own passkeys. They sign in through Gatehouse itself as the
 * built-in client `gatehouse-account` (src/oidc/account-client.ts: code flow, PKCE, a second
 * factor always), and the page's session is a sealed cookie scoped to `/account` that never
 * outlives the Gatehouse session (src/http/first-party-sign-in.ts). Every form carries a CSRF
 * token bound to that session; removals and renames have pages of their own, so everything but
 * adding a passkey works without script, and no page runs inline script.
 */

/** As long as the console's: an unattended account page signs itself out. */
export const ACCOUNT_SESSION_SECONDS = 3600;

const DONE_MESSAGES = {
  added: 'Passkey added. You can sign in with it from now on.',
  renamed: 'Passkey renamed.',
  removed: 'Passkey removed. It no longer signs you in.',
} as const;
type Done = keyof typeof DONE_MESSAGES;

export const LAST_FACTOR_MESSAGE =
  'This is your only second factor, and your account requires one. Add another passkey first, then remove this one.';
const ADD_FAILED: Record<string, string> = {
  no_challenge: 'The passkey request expired or was already answered. Try again.',
  duplicate: 'That passkey is registered already.',
};
const ADD_FAILED_DEFAULT = 'The passkey could not be added (it was refused, or made for another site). Try again.';

export interface AccountPerson {
  readonly id: string;
  readonly username: string;
  readonly disabled: boolean;
}

export interface AccountDeps {
  readonly issuer: string;
  readonly signIn: FirstPartySignIn;
  readonly csrf: Csrf;
  readonly passkeys: OwnPasskeys;
  readonly person: (id: string) => Promise<AccountPerson | undefined>;
  readonly views: Views;
  readonly logger: Logger;
}

interface SignedIn extends FirstPartySession {
  readonly person: AccountPerson;
}

type AccountContext = ParameterizedContext<{ account?: SignedIn; requestId?: string; log?: Logger }>;

function when(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function accountRoutes(deps: AccountDeps): Router {
  const base = deps.issuer.replace(/\/+$/, '');
  const listUrl = `${base}${ACCOUNT_PASSKEYS_PATH}`;
  const passkeyUrl = (id: string, action: 'rename' | 'remove') => `${listUrl}/${encodeURIComponent(id)}/${action}`;
  /** The registration challenge is this session's (migrations/0016's interaction_uid holds any key). */
  const challengeKey = (who: SignedIn) => `account:${who.sid}`;

  function page(ctx: AccountContext, status: number, template: string, data: Record<string, unknown>, options: { passkeyScript?: boolean } = {}): void {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    // Only the page that adds a passkey loads a script (from Gatehouse: script-src 'self'); the others keep script-src 'none'.
    if (options.passkeyScript === true) ctx.set('Content-Security-Policy', PASSKEY_PAGE_CONTENT_SECURITY_POLICY);
    const who = ctx.state.account;
    const common = who === undefined ? {} : { username: who.person.username, csrf: deps.csrf.tokenFor(who.sid), signOutAction: `${base}${ACCOUNT_PATH}/sign-out` };
    ctx.body = deps.views.render(template, { ...common, listUrl, ...data, passkeyScript: options.passkeyScript === true });
  }

  function errorPage(ctx: AccountContext, status: number, title: string, message: string): void {
    page(ctx, status, 'error', { title, message, requestId: ctx.state.requestId });
  }

  function redirect(ctx: AccountContext, location: string): void {
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(location);
  }

  function audit(ctx: AccountContext): AuditContext {
    return { actor: ctx.state.account?.person.id ?? null, clientIp: ctx.ip || null, requestId: ctx.state.requestId ?? null, logger: deps.logger };
  }

  /** Lets a signed-in, enabled person through (ctx.state.account); anyone else goes to sign in. */
  async function requireSignedIn(ctx: AccountContext, next: () => Promise<unknown>): Promise<void> {
    const session = await deps.signIn.session(ctx);
    const person = session === undefined ? undefined : await deps.person(session.sub);
    if (session === undefined || person === undefined || person.disabled) {
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(`${base}${ACCOUNT_PATH}/sign-in`);
      return;
    }
    ctx.state.account = { ...session, person };
    await next();
  }

  /** The posted form, its CSRF token checked against the session; undefined after answering 400/403. */
  async function form(ctx: AccountContext): Promise<Record<string, string> | undefined> {
    const fields = await readForm(ctx).catch((error: unknown) => {
      if (error instanceof FormError) return undefined;
      throw error;
    });
    if (fields === undefined) {
      errorPage(ctx, 400, 'Request refused', 'The form could not be read. Go back and try again.');
      return undefined;
    }
    const who = ctx.state.account;
    if (who === undefined || !deps.csrf.verify(who.sid, fields['csrf'])) {
      errorPage(ctx, 403, 'Request refused', 'This form has expired or did not come from this page. Go back, reload the page and try again.');
      return undefined;
    }
    return fields;
  }

  function shown(row: OwnPasskey) {
    return {
      id: row.credential_id,
      name: row.name,
      added: when(row.created_at),
      addedIso: row.created_at.toISOString(),
      lastUsed: row.last_used_at === null ? undefined : when(row.last_used_at),
      lastUsedIso: row.last_used_at?.toISOString(),
      kind: row.backup_eligible ? (row.backed_up ? 'Synced' : 'May sync') : 'This device only',
      renameHref: passkeyUrl(row.credential_id, 'rename'),
      removeHref: passkeyUrl(row.credential_id, 'remove'),
    };
  }

  async function renderList(ctx: AccountContext, status = 200, error?: string, name = ''): Promise<void> {
    const who = ctx.state.account!;
    const done = typeof ctx.query['done'] === 'string' && status === 200 ? ctx.query['done'] : undefined;
    page(
      ctx,
      status,
      'account-passkeys',
      {
        title: error === undefined ? 'Your passkeys' : 'Error: Your passkeys',
        passkeys: (await deps.passkeys.list(who.person.id)).map(shown),
        message: done !== undefined && Object.hasOwn(DONE_MESSAGES, done) ? DONE_MESSAGES[done as Done] : undefined,
        error,
        name,
        nameMax: PASSKEY_NAME_MAX_LENGTH,
        passkeysAvailable: deps.passkeys.available,
        addAction: listUrl,
        optionsAction: `${listUrl}/options`,
      },
      { passkeyScript: deps.passkeys.available },
    );
  }

  /** The person's passkey named in the URL, or undefined after answering 404. */
  async function findOwn(ctx: AccountContext): Promise<OwnPasskey | undefined> {
    const id = (ctx['params'] as Record<string, string>)['id'] ?? '';
    const found = (await deps.passkeys.list(ctx.state.account!.person.id)).find((row) => row.credential_id === id);
    if (found === undefined) errorPage(ctx, 404, 'Passkey not found', 'You have no passkey with that id. It may have been removed already.');
    return found;
  }

  function renderRename(ctx: AccountContext, passkey: OwnPasskey, status = 200, error?: string, name = passkey.name): void {
    page(ctx, status, 'account-passkey-rename', {
      title: error === undefined ? 'Rename passkey' : 'Error: Rename passkey',
      passkey: shown(passkey),
      name,
      nameMax: PASSKEY_NAME_MAX_LENGTH,
      action: passkeyUrl(passkey.credential_id, 'rename'),
      error,
    });
  }

  function renderRemove(ctx: AccountContext, passkey: OwnPasskey, status = 200, error?: string): void {
    page(ctx, status, 'account-passkey-remove', {
      title: error === undefined ? 'Remove passkey' : 'Error: Remove passkey',
      passkey: shown(passkey),
      action: passkeyUrl(passkey.credential_id, 'remove'),
      error,
    });
  }

  const router = new Router({ methods: [...ROUTER_METHODS] });

  router.get(ACCOUNT_PATH, function accountHome(ctx: AccountContext) {
    redirect(ctx, listUrl);
  });

  router.get(`${ACCOUNT_PATH}/sign-in`, async function startAccountSignIn(ctx: AccountContext) {
    await deps.signIn.start(ctx);
  });

  router.get(deps.signIn.callbackPath, async function finishAccountSignIn(ctx: AccountContext) {
    const finished = await deps.signIn.finish(ctx);
    if (!finished.ok) return errorPage(ctx, finished.status, finished.title, finished.message);
    redirect(ctx, listUrl);
  });

  router.post(`${ACCOUNT_PATH}/sign-out`, requireSignedIn, async function signOutOfAccount(ctx: AccountContext) {
    if ((await form(ctx)) === undefined) return;
    // The Gatehouse session ends too (its own confirmation page), or the next visit signs in silently.
    redirect(ctx, deps.signIn.signOut(ctx));
  });

  router.get(ACCOUNT_PASSKEYS_PATH, requireSignedIn, async function listOwnPasskeys(ctx: AccountContext) {
    await renderList(ctx);
  });

  // views/static/passkeys.js asks for the registration options with the form's CSRF token.
  router.post(`${ACCOUNT_PASSKEYS_PATH}/options`, requireSignedIn, async function ownRegistrationOptions(ctx: AccountContext) {
    const fields = await form(ctx);
    if (fields === undefined) return;
    if (!deps.passkeys.available || fields['ceremony'] !== 'register') return errorPage(ctx, 400, 'Request refused', 'Unknown passkey request.');
    const who = ctx.state.account!;
    const options = await deps.passkeys.registrationOptions(challengeKey(who), { id: who.person.id, username: who.person.username });
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'json';
    ctx.body = options;
  });

  router.post(ACCOUNT_PASSKEYS_PATH, requireSignedIn, async function addOwnPasskey(ctx: AccountContext) {
    const fields = await form(ctx);
    if (fields === undefined) return;
    if (!deps.passkeys.available) return errorPage(ctx, 404, 'Not available', 'Passkeys are not available on this server.');
    const who = ctx.state.account!;
    const name = fields['name'] ?? '';
    const added = await deps.passkeys.add(challengeKey(who), who.person.id, fields['response'] ?? '', name, audit(ctx));
    if (!added.ok) return renderList(ctx, 400, ADD_FAILED[added.reason] ?? ADD_FAILED_DEFAULT, name);
    redirect(ctx, `${listUrl}?done=added`);
  });

  router.get(`${ACCOUNT_PASSKEYS_PATH}/:id/rename`, requireSignedIn, async function renameOwnPasskeyForm(ctx: AccountContext) {
    const passkey = await findOwn(ctx);
    if (passkey !== undefined) renderRename(ctx, passkey);
  });

  router.post(`${ACCOUNT_PASSKEYS_PATH}/:id/rename`, requireSignedIn, async function renameOwnPasskey(ctx: AccountContext) {
    const fields = await form(ctx);
    if (fields === undefined) return;
    const passkey = await findOwn(ctx);
    if (passkey === undefined) return;
    const name = fields['name'] ?? '';
    const renamed = await deps.passkeys.rename(ctx.state.account!.person.id, passkey.credential_id, name, audit(ctx));
    if (renamed === 'empty') return renderRename(ctx, passkey, 400, 'Give the passkey a name.', name);
    if (renamed === 'not_found') return errorPage(ctx, 404, 'Passkey not found', 'You have no passkey with that id. It may have been removed already.');
    redirect(ctx, `${listUrl}?done=renamed`);
  });

  router.get(`${ACCOUNT_PASSKEYS_PATH}/:id/remove`, requireSignedIn, async function removeOwnPasskeyConfirm(ctx: AccountContext) {
    const passkey = await findOwn(ctx);
    if (passkey !== undefined) renderRemove(ctx, passkey);
  });

  router.post(`${ACCOUNT_PASSKEYS_PATH}/:id/remove`, requireSignedIn, async function removeOwnPasskey(ctx: AccountContext) {
    const fields = await form(ctx);
    if (fields === undefined) return;
    const passkey = await findOwn(ctx);
    if (passkey === undefined) return;
    const removed = await deps.passkeys.remove(ctx.state.account!.person.id, passkey.credential_id, audit(ctx));
    if (removed === 'last_factor') return renderRemove(ctx, passkey, 409, LAST_FACTOR_MESSAGE);
    if (removed === 'not_found') return errorPage(ctx, 404, 'Passkey not found', 'You have no passkey with that id. It may have been removed already.');
    redirect(ctx, `${listUrl}?done=removed`);
  });

  return router;
}
