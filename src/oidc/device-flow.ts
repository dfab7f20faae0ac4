import { hash } from 'node:crypto';
import type { Middleware } from 'koa';
import { errors, type Configuration, type KoaContextWithOIDC, type TokenEndpointGrantContext, type UnknownObject } from 'oidc-provider';
import type { Logger } from 'pino';
import { recordAuditInBackground, type AuditEvent } from '../audit/audit.js';
import type { Database } from '../db/database.js';
import { createDevicePollStore } from '../db/device-code-polls.js';
import { createRequestRateLimitStore } from '../db/request-rate-limits.js';
import type { Metrics } from '../http/metrics.js';
import { DEVICE_CODE_GRANT } from '../management/clients/schema.js';
import type { Views } from '../views.js';

/**
 * SPEC §12, RFC 8628: the device grant around oidc-provider's `deviceFlow`. The provider issues
 * and checks the codes; this module adds what it leaves to the deployment or does not do:
 * Gatehouse's own pages at `<ISSUER>/device` (code entry, confirmation naming the client and the
 * device's address, the outcome), the per-IP limit on user-code guesses, `slow_down` for clients
 * that poll too fast (oidc-provider never answers it), the poll `interval`, and the audit events.
 * The code's one-way state changes are made atomic in ./model-extensions.ts.
 */

/** RFC 8628 §3.2: how long a device code lives; 10 minutes, enough to find a laptop and sign in. */
export const DEVICE_CODE_TTL_SECONDS = 600;
/** RFC 8628 §3.2 `interval`: seconds a client waits between polls (the RFC's default). */
export const DEVICE_POLL_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: a client told slow_down adds 5 seconds to its interval; the server holds it to that. */
const SLOW_DOWN_STEP_SECONDS = 5;
/** A poll this much early still counts as on time: request latency varies, a client's timer does not. */
const POLL_ALLOWANCE_SECONDS = 1;

/**
 * RFC 8628 §5.1: wrong user codes one client IP may enter per window. The codes have 20^8 (about
 * 2^34) values and live 10 minutes, so this makes guessing a live one hopeless; a person mistyping
 * gets ten tries. Only wrong codes count; the window is fixed and shared by every instance.
 */
export const USER_CODE_GUESS_LIMIT = 10;
export const USER_CODE_GUESS_WINDOW_SECONDS = 600;

/** The longest device software name kept for the confirmation page (the User-Agent is the device's to choose). */
const MAX_DEVICE_AGENT = 200;

/** What a device page showed, for the guard that limits guesses and audits outcomes. */
type DeviceOutcome = 'wrong_code' | 'found' | 'denied' | 'approved' | 'other';

/** What the provider's re-render errors are called (lib/helpers/re_render_errors.js); they are not exported. */
const ERROR_MESSAGES: Readonly<Record<string, string>> = {
  NoCodeError: 'Enter the code your device shows.',
  NotFoundError: 'That code is not right. Check the code on your device and enter it again.',
  ExpiredError: 'That code has expired. Start again on your device to get a new code.',
  AlreadyUsedError: 'That code was already used. Start again on your device to get a new code.',
  DeviceCodeAlreadyUsed: 'That code was already used. Start again on your device to get a new code.',
};

/**
 * The provider's own form check (lib/shared/xsrf.js): the form was from an earlier visit, one that
 * opening the page again (in another tab, say) replaced. The page it answers with works.
 */
const STALE_FORM_DESCRIPTIONS = new Set(['xsrf token invalid', 'could not find device form details']);
const STALE_FORM_MESSAGE = 'This page was replaced by a newer one (opened again, or in another tab). Enter the code again here.';

/** Refuses the second of two confirmations (or outcomes) of one device code (./model-extensions.ts). */
export class DeviceCodeAlreadyUsed extends errors.InvalidRequest {
  constructor() {
    super('code has already been used');
    this.name = 'DeviceCodeAlreadyUsed';
  }
}

export interface DeviceFlowDeps {
  readonly db: Database;
  readonly views: Views;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

type DeviceFlowFeature = NonNullable<NonNullable<Configuration['features']>['deviceFlow']>;

interface DeviceInfo {
  readonly ip?: unknown;
  readonly ua?: unknown;
  readonly at?: unknown;
}

function clientNameOf(client: { clientName?: unknown; clientId: string } | undefined): string {
  if (client === undefined) return 'the application';
  return typeof client.clientName === 'string' && client.clientName !== '' ? client.clientName : client.clientId;
}

/** "2 minutes ago": when the device asked, in words (the page is read a minute or two later). */
function agoInWords(at: unknown): string | undefined {
  if (typeof at !== 'number') return undefined;
  const seconds = Math.max(0, Math.floor(Date.now() / 1000) - at);
  if (seconds < 60) return 'less than a minute ago';
  const minutes = Math.floor(seconds / 60);
  return minutes === 1 ? '1 minute ago' : `${minutes} minutes ago`;
}

/** The key a device code's poll pace is stored under: never the code itself. */
const pollKey = (deviceCode: string) => hash('sha256', deviceCode, 'base64url');

export function createDeviceFlow(deps: DeviceFlowDeps) {
  const guesses = createRequestRateLimitStore(deps.db);
  const polls = createDevicePollStore(deps.db);

  function render(ctx: KoaContextWithOIDC, template: string, data: Record<string, unknown>): void {
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = deps.views.render(template, data);
  }

  const xsrfOf = (ctx: KoaContextWithOIDC) => {
    const state = ctx.oidc.session?.state as { secret?: unknown } | undefined;
    return typeof state?.secret === 'string' ? state.secret : '';
  };

  /** Audited as the provider's other events are (src/audit/audit.ts recordAuditInBackground). */
  function audit(ctx: KoaContextWithOIDC, actor: string | null, event: AuditEvent): void {
    const requestId = typeof ctx.state['requestId'] === 'string' ? ctx.state['requestId'] : null;
    recordAuditInBackground(deps.db, { actor, clientIp: ctx.ip || null, requestId, logger: deps.logger }, event);
  }

  const feature: DeviceFlowFeature = {
    enabled: true,
    // The provider's defaults, stated: eight letters from 20 that cannot be confused (no vowels,
    // so no words), about 34 bits, grouped for reading off a screen (RFC 8628 §6.1).
    charset: 'base-20',
    mask: '****-****',
    // Shown on the confirmation page, so a person can tell a request from their own device from
    // one an attacker started and sent them the code of (RFC 8628 §5.4).
    deviceInfo(ctx): UnknownObject {
      const agent = ctx.get('user-agent');
      return { ip: ctx.ip, ...(agent === '' ? {} : { ua: agent.slice(0, MAX_DEVICE_AGENT) }), at: Math.floor(Date.now() / 1000) };
    },
    userCodeInputSource(ctx, _form, out, err) {
      const action = ctx.oidc.urlFor('code_verification');
      if (err?.name === 'AbortedError') {
        ctx.state['deviceOutcome'] = 'denied' satisfies DeviceOutcome;
        render(ctx, 'device-done', {
          title: 'Device not connected',
          message: 'You denied access: the device is not signed in. You can close this page.',
          another: action,
        });
        return;
      }
      ctx.state['deviceOutcome'] = (err?.name === 'NotFoundError' ? 'wrong_code' : 'other') satisfies DeviceOutcome;
      const message =
        err === undefined
          ? undefined
          : (ERROR_MESSAGES[err.name] ??
            (STALE_FORM_DESCRIPTIONS.has(out?.error_description ?? '')
              ? STALE_FORM_MESSAGE
              : out?.error === 'server_error'
                ? 'Something went wrong. Please try again in a moment.'
                : 'That code cannot be used. Start again on your device.'));
      const typed = (err as { userCode?: unknown } | undefined)?.userCode;
      render(ctx, 'device', { title: 'Connect a device', action, xsrf: xsrfOf(ctx), error: message, userCode: typeof typed === 'string' ? typed.slice(0, 64) : '' });
    },
    userCodeConfirmSource(ctx, _form, client, deviceInfo, userCode) {
      ctx.state['deviceOutcome'] = 'found' satisfies DeviceOutcome;
      const device = deviceInfo as DeviceInfo;
      render(ctx, 'device-confirm', {
        title: 'Confirm the device',
        action: ctx.oidc.urlFor('code_verification'),
        xsrf: xsrfOf(ctx),
        clientName: clientNameOf(client),
        userCode,
        deviceAddress: typeof device.ip === 'string' ? device.ip : 'an unknown address',
        deviceAgent: typeof device.ua === 'string' ? device.ua : undefined,
        askedAgo: agoInWords(device.at),
      });
    },
    successSource(ctx) {
      ctx.state['deviceOutcome'] = 'approved' satisfies DeviceOutcome;
      render(ctx, 'device-done', {
        title: 'Device connected',
        message: `You are signed in to ${clientNameOf(ctx.oidc.client)} on your device. You can close this page and go back to the device.`,
      });
    },
  };

  /**
   * Around the provider's device routes (its routes, mountPath ''): the guess limit on the code
   * entry form, the outcome audits, and `interval` in the device authorization response.
   */
  function middleware(paths: { readonly deviceAuthorization: string; readonly codeVerification: string }): Middleware {
    const resumePrefix = `${paths.codeVerification}/`;
    return async function deviceFlowPages(ctx, next) {
      const oidcCtx = ctx as unknown as KoaContextWithOIDC;
      if (ctx.path === paths.deviceAuthorization) {
        await next();
        const body = ctx.body as Record<string, unknown> | undefined;
        if (ctx.status !== 200 || typeof body?.['device_code'] !== 'string') return;
        // RFC 8628 §3.2: the provider leaves `interval` out (clients then assume 5); said plainly, as slow_down enforces it.
        body['interval'] = DEVICE_POLL_INTERVAL_SECONDS;
        const client = oidcCtx.oidc.client;
        audit(oidcCtx, client?.clientId ?? null, {
          type: 'device_code.requested',
          target: client?.clientId ?? 'unknown',
          details: { client_id: client?.clientId ?? null, scope: typeof oidcCtx.oidc.params?.['scope'] === 'string' ? oidcCtx.oidc.params['scope'] : null },
        });
        return;
      }
      if (ctx.path !== paths.codeVerification && !(ctx.method === 'GET' && ctx.path.startsWith(resumePrefix))) {
        await next();
        return;
      }

      // A posted code is a guess until it is found: the try is taken before the lookup, so
      // concurrent posts from one address (on any instance) get no more than sequential ones,
      // and given back unless the code was wrong.
      const guessKey = `user-codes:${ctx.ip}`;
      const guessing = ctx.method === 'POST' && ctx.path === paths.codeVerification;
      if (guessing) {
        const { hits, secondsLeft } = await guesses.hit(guessKey, USER_CODE_GUESS_WINDOW_SECONDS);
        if (hits > USER_CODE_GUESS_LIMIT) {
          deps.metrics.rateLimited.inc({ scope: 'user_code_ip' });
          // Once per address and window: the audit trail shows the attack without growing with it.
          if (hits === USER_CODE_GUESS_LIMIT + 1) {
            audit(oidcCtx, null, { type: 'device_code.guesses_limited', target: ctx.ip, outcome: 'failure', details: { limit: USER_CODE_GUESS_LIMIT, window_seconds: USER_CODE_GUESS_WINDOW_SECONDS } });
          }
          ctx.status = 429;
          ctx.set('Retry-After', String(secondsLeft));
          render(oidcCtx, 'error', {
            title: 'Too many codes',
            message: 'Too many wrong codes came from your network. Wait a few minutes, then enter the code again.',
            requestId: ctx.state['requestId'],
          });
          return;
        }
      }
      try {
        await next();
      } finally {
        if (guessing && ctx.state['deviceOutcome'] !== 'wrong_code') await guesses.refund(guessKey, USER_CODE_GUESS_WINDOW_SECONDS);
      }

      const outcome = ctx.state['deviceOutcome'] as DeviceOutcome | undefined;
      if (outcome !== 'approved' && outcome !== 'denied') return;
      const code = oidcCtx.oidc.entities.DeviceCode;
      const device = (code?.deviceInfo ?? {}) as DeviceInfo;
      const accountId = outcome === 'approved' ? (code?.accountId ?? null) : (oidcCtx.oidc.session?.accountId ?? null);
      audit(oidcCtx, accountId, {
        type: outcome === 'approved' ? 'device_code.approved' : 'device_code.denied',
        target: code?.clientId ?? 'unknown',
        outcome: outcome === 'approved' ? 'success' : 'failure',
        details: {
          client_id: code?.clientId ?? null,
          device_ip: typeof device.ip === 'string' ? device.ip : null,
          ...(outcome === 'approved' ? { scope: code?.scope ?? null } : {}),
        },
      });
    };
  }

  /**
   * RFC 8628 §3.5 slow_down around the device_code grant (after client authentication, so only the
   * code's own client paces it). Only a pending code's polls are paced: once the person has
   * answered, the next poll gets its answer whenever it comes.
   */
  function paceDevicePolls<P extends object>(handler: (ctx: TokenEndpointGrantContext<P>) => void | Promise<void>) {
    return async function pacedDeviceCodeGrant(ctx: TokenEndpointGrantContext<P>): Promise<void> {
      try {
        await handler(ctx);
      } catch (error) {
        const deviceCode = ctx.oidc.params?.['device_code'];
        if (error instanceof errors.AuthorizationPending && typeof deviceCode === 'string') {
          const tooSoon = await polls.pollTooSoon(pollKey(deviceCode), {
            intervalSeconds: DEVICE_POLL_INTERVAL_SECONDS,
            stepSeconds: SLOW_DOWN_STEP_SECONDS,
            allowanceSeconds: POLL_ALLOWANCE_SECONDS,
            ttlSeconds: DEVICE_CODE_TTL_SECONDS,
          });
          if (tooSoon) throw new errors.SlowDown();
        }
        throw error;
      }
    };
  }

  /** The device's tokens, issued: the last step of the grant, audited like its others. */
  function onGrantSuccess(ctx: KoaContextWithOIDC): void {
    if (ctx.oidc.params?.['grant_type'] !== DEVICE_CODE_GRANT) return;
    const code = ctx.oidc.entities.DeviceCode;
    const clientId = ctx.oidc.client?.clientId ?? null;
    audit(ctx, clientId, {
      type: 'device_code.redeemed',
      target: clientId ?? 'unknown',
      details: { client_id: clientId, account_id: code?.accountId ?? null, scope: code?.scope ?? null },
    });
  }

  return { feature, middleware, paceDevicePolls, onGrantSuccess };
}
