import type { Middleware } from 'koa';
import { isUnavailable, type Database } from '../db/database.js';
import { createRequestRateLimitStore } from '../db/request-rate-limits.js';
import type { Views } from '../views.js';

/**
 * SPEC §6: "Unauthenticated requests that create state (`/auth`, interaction pages, device codes)
 * are rate-limited per client IP." Every request to the authorization endpoint stores an
 * interaction for 30 minutes, and the hosted pages and end-session read and write sessions; one
 * address gets `limit` of them a minute, together.
 *
 * Counted in PostgreSQL (SPEC §1: counters live in the database), not in memory as the token
 * endpoint's limits are: these requests already write a row each, so one more upsert (a single
 * statement on a primary key) is affordable, and the limit then holds across instances and
 * workers instead of multiplying with them.
 */

/** The window: a fixed minute, aligned on the database clock so every instance shares it. */
export const PAGE_RATE_WINDOW_SECONDS = 60;

/** The route label of a limited path (one of a fixed few, for metrics and logs), or undefined when not limited. */
export function limitedPageRoute(path: string): string | undefined {
  // oidc-provider's default routes: authorization `/auth` (and `/auth/:uid` on resume), end_session `/session/end`.
  if (path === '/auth' || path.startsWith('/auth/')) return '/auth';
  if (path.startsWith('/interaction/')) return '/interaction';
  if (path === '/session/end' || path.startsWith('/session/end/')) return '/session/end';
  // The device grant (SPEC §12): `/device/auth` creates device codes, `/device` and `/device/:uid` are its pages.
  if (path === '/device' || path.startsWith('/device/')) return '/device';
  return undefined;
}

export interface PageRateLimitOptions {
  readonly db: Database;
  readonly views: Views;
  /** Requests a minute per client IP; 0 disables. */
  readonly limit: number;
  /** Called once per refused request (the gatehouse_rate_limited_total counter). */
  readonly onLimited: () => void;
}

export function limitPagesPerIp(options: PageRateLimitOptions): Middleware {
  const store = createRequestRateLimitStore(options.db);
  return async function rateLimitPages(ctx, next) {
    const route = options.limit > 0 ? limitedPageRoute(ctx.path) : undefined;
    if (route === undefined) {
      await next();
      return;
    }
    // ctx.ip: the peer, or the X-Forwarded-For client under TRUST_PROXY (app.maxIpsCount = 1).
    let counted: { hits: number; secondsLeft: number };
    try {
      counted = await store.hit(`pages:${ctx.ip}`, PAGE_RATE_WINDOW_SECONDS);
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      // SPEC §6: without the database these pages fail fast with their own 503 page (the page
      // itself would need the database too), not the app's generic problem+json.
      ctx.status = 503;
      ctx.set({ 'Retry-After': '5', 'Cache-Control': 'no-store' });
      ctx.type = 'html';
      ctx.body = options.views.render('error', {
        title: 'Temporarily unavailable',
        message: 'Sign-in is temporarily unavailable. Please try again in a moment.',
        requestId: ctx.state.requestId,
      });
      return;
    }
    const { hits, secondsLeft } = counted;
    if (hits <= options.limit) {
      await next();
      return;
    }
    options.onLimited();
    ctx.state.routeLabel = route;
    ctx.status = 429;
    // RFC 6585 §4 / RFC 9110 §10.2.3: whole seconds until the window ends.
    ctx.set({ 'Retry-After': String(secondsLeft), 'Cache-Control': 'no-store' });
    ctx.type = 'html';
    ctx.body = options.views.render('error', {
      title: 'Too many requests',
      message: 'Too many requests came from your network. Wait a minute, then go back to the application and try again.',
      requestId: ctx.state.requestId,
    });
  };
}
