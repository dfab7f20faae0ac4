import { createCsrf } from '../http/csrf.js';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { ROUTER_METHODS } from '../http/errors.js';
import { CONSOLE_CONTENT_SECURITY_POLICY } from '../http/security-headers.js';
import { FormError, readForm } from '../http/form.js';
import { firstPartySignIn } from '../http/first-party-sign-in.js';
import type { SealedCookies } from '../http/sealed-cookies.js';
import { NotFound } from '../management/errors.js';
import type { ManagementServices } from '../management/index.js';
import { CONSOLE_CLIENT_ID, CONSOLE_PATH } from '../oidc/console-client.js';
import type { GatewayCodes } from '../oidc/gateway-code.js';
import type { AdminContext } from '../audit/audit.js';
import type { Views } from '../views.js';
import { areasFor, CONSOLE_AREAS, type ConsoleArea } from './areas.js';

/**
 * The admin console's front door (SPEC §11): `<ISSUER>/console`, signed in through Gatehouse
 * itself. A code flow with PKCE for the console's own client (src/oidc/console-client.ts, which
 * always asks for a second factor), redeemed in-process; then a sealed session cookie scoped to
 * the console's path, lasting an hour at most and never past the Gatehouse session, checked
 * against it on every request. What a person sees follows their roles (./areas.ts); someone
 * with none gets a clear "no access" page. Every form carries a CSRF token bound to the session.
 */

/** Shorter than a sign-in session (12 h): an unattended console signs itself out. */
export const CONSOLE_SESSION_SECONDS = 3600;
/** The ids the management services give resources; anything else names none. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The session cookie, and the sealed cookies' audience: the console's sessions are for it only. */
const SESSION_COOKIE = 'gatehouse-console';

export interface ConsolePerson {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
  readonly disabled: boolean;
}

/** What an area's pages get from the console (./areas/*.ts register their routes with it). */
export interface ConsoleKit {
  /** `<ISSUER>/console`, which every link and form action starts with. */
  readonly consoleUrl: string;
  /** Lets through a signed-in person who may open `area` (ctx.state.console), else sign-in or 403. */
  requireArea(area: ConsoleArea['id']): (ctx: ParameterizedContext, next: () => Promise<unknown>) => Promise<void>;
  /** Renders a console page with the header (person, sign-out) and the areas' links. */
  render(ctx: ParameterizedContext, template: string, data: Record<string, unknown>, status?: number): void;
  /** The posted form, its CSRF token checked against the session; undefined after answering 400/403. */
  form(ctx: ParameterizedContext): Promise<Record<string, string> | undefined>;
  /** The audit context of a change: the person's id as the actor, their areas' admin scopes as what they may grant. */
  audit(ctx: ParameterizedContext): AdminContext;
  /** 303 to `url` (a console URL) after a change, not cached. */
  redirect(ctx: ParameterizedContext, url: string): void;
  /** The 400 page for a list page whose cursor the service refused (forged or outdated). */
  pageNotFound(ctx: ParameterizedContext): void;
  /** The 404 page for a `what` (e.g. "Gateway route") that the URL names but does not exist. */
  notFound(ctx: ParameterizedContext, what: string): void;
  /** What the path's `:id` names, through `get`; undefined after answering 404 (an id that is no UUID names nothing). */
  find<T>(ctx: ParameterizedContext, what: string, get: (id: string) => Promise<T>): Promise<T | undefined>;
}

/** An area's pages, mounted under `<ISSUER>/console/<id>`. */
export interface ConsoleAreaModule {
  readonly id: ConsoleArea['id'];
  register(router: Router, kit: ConsoleKit): void;
}

/** What requireArea leaves in ctx.state.console. */
export interface ConsoleState {
  readonly person: ConsolePerson;
  readonly areas: readonly ConsoleArea[];
  readonly sid: string;
  /** The area being shown: its navigation link is marked current. */
  readonly area?: ConsoleArea['id'];
}

export interface ConsoleDeps {
  readonly issuer: string;
  readonly codes: GatewayCodes;
  readonly cookies: SealedCookies;
  /** Keys the CSRF tokens (derived from the cookie secret every instance shares). */
  readonly csrfKey: Buffer;
  readonly person: (id: string) => Promise<ConsolePerson | undefined>;
  /** The overview reads these (key status, recent events, counts); area modules get the whole set through their own deps. */
  readonly management: Pick<ManagementServices, 'keys' | 'auditEvents' | CountedArea>;
  readonly views: Views;
  readonly logger: Logger;
  /** The areas with pages (the overview links to these). */
  readonly modules?: readonly ConsoleAreaModule[];
}

type SignedIn = ConsoleState;

/** The areas whose overview entry shows how many there are, and the service that counts them. */
const COUNTED = {
  clients: 'clients',
  'resource-servers': 'resourceServers',
  users: 'users',
  gateway: 'gatewayRoutes',
  'identity-providers': 'identityProviders',
} as const satisfies Partial<Record<ConsoleArea['id'], keyof ManagementServices>>;
type CountedArea = (typeof COUNTED)[keyof typeof COUNTED];

function countedService(id: ConsoleArea['id']): CountedArea | undefined {
  return Object.hasOwn(COUNTED, id) ? COUNTED[id as keyof typeof COUNTED] : undefined;
}

export function consoleRoutes(deps: ConsoleDeps): Router {
  const base = deps.issuer.replace(/\/+$/, '');
  const consoleUrl = `${base}${CONSOLE_PATH}`;
  // The same first-party sign-in as the account pages: code + PKCE + MFA, redeemed in-process.
  const signIn = firstPartySignIn({
    issuer: deps.issuer,
    clientId: CONSOLE_CLIENT_ID,
    path: CONSOLE_PATH,
    landing: CONSOLE_PATH,
    cookieName: SESSION_COOKIE,
    cookies: deps.cookies,
    codes: deps.codes,
    maxSessionSeconds: CONSOLE_SESSION_SECONDS,
  });
  const csrf = createCsrf(deps.csrfKey, 'console');
  const csrfFor = (sid: string) => csrf.tokenFor(sid);

  function page(ctx: ParameterizedContext, status: number, template: string, data: Record<string, unknown>): void {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', CONSOLE_CONTENT_SECURITY_POLICY);
    ctx.body = deps.views.render(template, { consoleUrl, consoleScript: true, ...data });
  }

  function errorPage(ctx: ParameterizedContext, status: number, title: string, message: string): void {
    page(ctx, status, 'error', { title, message, requestId: ctx.state.requestId });
  }

  /** The signed-in person, or undefined (no cookie, forged, expired, signed out at Gatehouse, disabled). */
  async function signedIn(ctx: ParameterizedContext): Promise<SignedIn | undefined> {
    // Checked against the live Gatehouse session: the console's lasts no longer.
    const session = await signIn.session(ctx);
    if (session === undefined) return undefined;
    const person = await deps.person(session.sub);
    if (person === undefined || person.disabled) return undefined;
    return { person, areas: areasFor(person.roles), sid: session.sid };
  }

  const router = new Router({ methods: [...ROUTER_METHODS] });
  const modules = deps.modules ?? [];
  const withPages = new Set(modules.map((module) => module.id));

  /** The header and navigation every console page carries. */
  function commonData(who: SignedIn): Record<string, unknown> {
    return {
      username: who.person.username,
      csrf: csrfFor(who.sid),
      signOutAction: `${consoleUrl}/sign-out`,
      wide: true,
      nav: who.areas.filter((area) => withPages.has(area.id)).map((area) => ({ title: area.title, href: `${consoleUrl}/${area.id}` })),
    };
  }

  const kit: ConsoleKit = {
    consoleUrl,
    requireArea: (area) =>
      async function requireConsoleArea(ctx, next) {
        const who = await signedIn(ctx);
        if (who === undefined) {
          ctx.status = 303;
          ctx.redirect(`${consoleUrl}/sign-in`);
          return;
        }
        if (!who.areas.some((open) => open.id === area)) {
          page(ctx, 403, 'console-no-access', { ...commonData(who), title: 'No access', roles: CONSOLE_AREAS.filter((a) => a.id === area).map((a) => a.role) });
          return;
        }
        (ctx.state as { console?: ConsoleState }).console = { ...who, area };
        await next();
      },
    render(ctx, template, data, status = 200) {
      const who = (ctx.state as { console?: ConsoleState }).console;
      const current = who?.area === undefined ? {} : { navCurrent: `${consoleUrl}/${who.area}` };
      page(ctx, status, template, { ...(who === undefined ? {} : commonData(who)), ...current, ...data });
    },
    async form(ctx) {
      const who = (ctx.state as { console?: ConsoleState }).console;
      const form = await readForm(ctx).catch((error: unknown) => {
        if (error instanceof FormError) return undefined;
        throw error;
      });
      if (form === undefined) {
        errorPage(ctx, 400, 'Request refused', 'The form could not be read. Go back and try again.');
        return undefined;
      }
      if (who === undefined || !csrf.verify(who.sid, form['csrf'])) {
        errorPage(ctx, 403, 'Request refused', 'This form has expired or did not come from the console. Go back, reload the page and try again.');
        return undefined;
      }
      return form;
    },
    audit(ctx) {
      const who = (ctx.state as { console?: ConsoleState }).console;
      const scopes = new Set<string>((who?.areas ?? []).map((area) => area.scope));
      return { actor: who?.person.id ?? null, clientIp: ctx.ip || null, requestId: typeof ctx.state.requestId === 'string' ? ctx.state.requestId : null, logger: deps.logger, privileges: { kind: 'scopes', scopes } };
    },
    redirect(ctx, url) {
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(url);
    },
    pageNotFound(ctx) {
      errorPage(ctx, 400, 'Page not found', 'That page of the list does not exist. Start again from the first page.');
    },
    notFound(ctx, what) {
      kit.render(ctx, 'error', { title: `${what} not found`, message: `No ${what.toLowerCase()} with that id. It may have been deleted.`, requestId: ctx.state.requestId }, 404);
    },
    async find(ctx, what, get) {
      const id = (ctx.params as Record<string, string | undefined> | undefined)?.['id'] ?? '';
      if (!UUID.test(id)) {
        kit.notFound(ctx, what);
        return undefined;
      }
      try {
        return await get(id);
      } catch (error) {
        if (!(error instanceof NotFound)) throw error;
        kit.notFound(ctx, what);
        return undefined;
      }
    },
  };

  router.get(CONSOLE_PATH, async function overview(ctx) {
    const who = await signedIn(ctx);
    if (who === undefined) {
      ctx.status = 303;
      ctx.redirect(`${consoleUrl}/sign-in`);
      return;
    }
    const common = { title: 'Console', ...commonData(who) };
    if (who.areas.length === 0) {
      page(ctx, 403, 'console-no-access', { ...common, roles: CONSOLE_AREAS.map((area) => area.role) });
      return;
    }
    const has = (id: ConsoleArea['id']) => who.areas.some((area) => area.id === id);
    const keys = has('keys') ? (await deps.management.keys.list({ limit: 20 })).items : undefined;
    const events = has('audit') ? (await deps.management.auditEvents.list({ limit: 10 })).items : undefined;
    // Only the areas this person may open are counted (nobody learns how many users there are without the users role).
    const areas = await Promise.all(
      who.areas.map(async (area) => {
        const service = countedService(area.id);
        return {
          id: area.id,
          title: area.title,
          href: withPages.has(area.id) ? `${consoleUrl}/${area.id}` : undefined,
          count: service === undefined ? undefined : await deps.management[service].count(),
        };
      }),
    );
    page(ctx, 200, 'console-overview', { ...common, areas, keys, events });
  });

  router.get(`${CONSOLE_PATH}/sign-in`, async function startSignIn(ctx) {
    await signIn.start(ctx);
  });

  router.get(signIn.callbackPath, async function finishSignIn(ctx) {
    const finished = await signIn.finish(ctx);
    if (!finished.ok) return errorPage(ctx, finished.status, finished.title, finished.message);
    deps.logger.info('console signed in');
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.set('Location', consoleUrl);
  });

  router.post(`${CONSOLE_PATH}/sign-out`, async function signOut(ctx) {
    const who = await signedIn(ctx);
    const form = await readForm(ctx).catch((error: unknown) => {
      if (error instanceof FormError) return undefined;
      throw error;
    });
    if (form === undefined) return errorPage(ctx, 400, 'Request refused', 'The form could not be read. Open the console again.');
    if (who !== undefined && !csrf.verify(who.sid, form['csrf'])) return errorPage(ctx, 403, 'Request refused', 'This form has expired. Open the console again.');
    const sessionEnd = signIn.signOut(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    // The Gatehouse session ends too (its own confirmation page), or the next visit signs in silently.
    ctx.set('Location', sessionEnd);
  });

  for (const module of modules) module.register(router, kit);
  return router;
}
