import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { errors, type Interaction, type InteractionResults } from 'oidc-provider';
import type { Logger } from 'pino';
import { PasswordCheckRefused, type PasswordHasher } from '../accounts/passwords.js';
import { randomBytes } from 'node:crypto';
import { DEVICE_COOKIE, type DeviceCookies } from '../sign-in/device-cookies.js';
import { subjectFor, type AttemptReservation, type LoginThrottle, type ThrottleSubject } from '../sign-in/throttle.js';
import { normalizeUsername } from '../accounts/usernames.js';
import { recordAudit } from '../admin/audit.js';
import { InvalidTextError, isUnavailable, type Database, type Queryable } from '../db/database.js';
import { createCodeAttemptStore } from '../db/code-attempts.js';
import { createUserStore } from '../db/users.js';
import type { Metrics } from '../http/metrics.js';
import { ROUTER_METHODS } from '../http/errors.js';
import { ACR_PASSWORD } from '../oidc/accounts.js';
import type { ProviderHost } from '../oidc/provider-host.js';
import type { ResourceServerRegistry } from '../oidc/resource-server-registry.js';
import type { Views } from '../views.js';
import type { Csrf } from './csrf.js';
import { secondFactorRequired } from '../accounts/mfa-policy.js';
import { FEW_RECOVERY_CODES, type SecondFactor } from '../accounts/second-factor.js';
import { ACR_MFA } from '../oidc/accounts.js';
import QRCode from 'qrcode';
import { FormError, readForm } from './form.js';

/**
 * The hosted pages (SPEC §4): login and consent for oidc-provider's interactions. Server-rendered,
 * no script, every form carrying a CSRF token bound to the interaction.
 */

export interface InteractionDeps {
  /** Form actions and redirects start with it, whatever Host a request carried (SPEC §1). */
  readonly issuer: string;
  readonly providers: ProviderHost;
  readonly db: Database;
  readonly views: Views;
  readonly passwords: PasswordHasher;
  readonly throttle: LoginThrottle;
  readonly csrf: Csrf;
  readonly resourceServers: ResourceServerRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly secondFactor: SecondFactor;
  readonly deviceCookies: DeviceCookies;
}

/**
 * Between a correct password and a correct second factor, the interaction remembers who is
 * signing in (in its own `result`, which the provider replaces when the interaction finishes).
 */
interface PendingSignIn {
  readonly accountId: string;
  readonly username: string;
  /** The normalised username typed at the password step (its device cookie entry is for it). */
  readonly normalized: string;
  /** The counter the password step was charged to; codes are charged to it too. */
  readonly subject: ThrottleSubject;
  /** This attempt's row in sign_in_code_attempts: its five tries are counted there (SPEC §4). */
  readonly attemptId: string;
  /** Set once enrollment is confirmed and the recovery codes were shown. */
  readonly enrolled?: boolean;
}

const MAX_CODE_FAILURES = 5;
const PENDING_KEY = 'gatehouse_pending';

function pendingOf(details: { result?: Record<string, unknown> | undefined }): PendingSignIn | undefined {
  const value = details.result?.[PENDING_KEY] as PendingSignIn | undefined;
  return typeof value?.accountId === 'string' && typeof value.attemptId === 'string' ? value : undefined;
}

async function savePending(details: Interaction, pending: PendingSignIn | undefined): Promise<void> {
  details.result = pending === undefined ? {} : { [PENDING_KEY]: pending };
  await details.persist();
}

// One message for every failure, so nothing tells whether a username exists or is locked (SPEC §4).
const SIGN_IN_FAILED = 'Sign-in failed. Check your username and password. After several failed attempts, wait a few minutes before trying again.';

const OIDC_SCOPE_WORDS: Record<string, string> = {
  openid: 'Confirm who you are',
  profile: 'See your name and username',
  email: 'See your email address',
  offline_access: 'Keep access while you are away (stay signed in)',
};

class PageError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}

function param(ctx: ParameterizedContext, name: string): string {
  return (ctx['params'] as Record<string, string>)[name] ?? '';
}

export function interactionRoutes(deps: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction', methods: [...ROUTER_METHODS] });
  const users = createUserStore(deps.db);
  /** A hosted page's absolute URL (SPEC §1: advertised URLs start with ISSUER). */
  const pageUrl = (uid: string, step = '') => `${deps.issuer}/interaction/${encodeURIComponent(uid)}${step}`;

  const render = (ctx: ParameterizedContext, template: string, data: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = deps.views.render(template, data);
  };

  const findClient = (clientId: unknown) => (typeof clientId === 'string' ? deps.providers.current().Client.find(clientId) : Promise.resolve(undefined));
  const nameOf = (client: { clientName?: string | undefined } | undefined, clientId: unknown) =>
    client?.clientName ?? (typeof clientId === 'string' ? clientId : 'the application');
  const clientName = async (clientId: unknown) => nameOf(await findClient(clientId), clientId);

  const auditContext = (ctx: ParameterizedContext, actor: string | null) => ({
    actor,
    clientIp: ctx.ip || null,
    requestId: typeof ctx.state['requestId'] === 'string' ? ctx.state['requestId'] : null,
    logger: ctx.state['log'] as Logger | undefined,
  });

  const loginPage = (ctx: ParameterizedContext, uid: string, name: string, extra: { username?: string; error?: string }, status = 200) =>
    render(
      ctx,
      'login',
      {
        title: 'Sign in',
        clientName: name,
        action: pageUrl(uid, '/login'),
        abortAction: pageUrl(uid, '/abort'),
        csrf: deps.csrf.tokenFor(uid),
        username: extra.username ?? '',
        error: extra.error,
      },
      status,
    );

  router.use(async function pageErrors(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (error) {
      if (error instanceof PasswordCheckRefused) {
        // SPEC §4: this address has its share of the password queue already (or the queue is full).
        // The login page again, with the one generic message, as a throttled attempt gets.
        deps.metrics.loginOutcomes.inc({ outcome: 'throttled' });
        ctx.set('Retry-After', String(error.retryAfterSeconds));
        loginPage(ctx, param(ctx, 'uid'), 'the application', { error: SIGN_IN_FAILED }, 429);
        return;
      }
      let page: PageError;
      if (error instanceof PageError) page = error;
      else if (error instanceof errors.SessionNotFound || error instanceof errors.InvalidRequest) {
        page = new PageError(400, 'Sign-in expired', 'This sign-in request has expired or was already completed. Go back to the application and start again.');
      } else if (error instanceof FormError || error instanceof InvalidTextError) {
        page = new PageError(error.status, 'Request refused', 'The form could not be processed. Go back to the application and start again.');
      } else if (isUnavailable(error)) {
        ctx.set('Retry-After', '5');
        page = new PageError(503, 'Temporarily unavailable', 'Sign-in is temporarily unavailable. Please try again in a moment.');
      } else {
        deps.logger.error({ err: error, reqId: ctx.state['requestId'] }, 'interaction error');
        page = new PageError(500, 'Something went wrong', 'The request could not be completed.');
      }
      render(ctx, 'error', { title: page.title, message: page.message, requestId: ctx.state['requestId'] }, page.status);
    }
  });

  /** Reads the form and checks its CSRF token against the interaction in the URL. */
  async function checkedForm(ctx: ParameterizedContext, uid: string): Promise<Record<string, string>> {
    const form = await readForm(ctx);
    if (!deps.csrf.verify(uid, form['csrf'])) {
      throw new PageError(403, 'Request refused', 'This form has expired or did not come from this page. Go back to the application and start again.');
    }
    return form;
  }

  const codeAttempts = createCodeAttemptStore(deps.db);

  function deviceCookieOf(ctx: ParameterizedContext): string | undefined {
    // Signed by deviceCookies itself, not by Koa's `.sig` companion cookie.
    return ctx.cookies.get(DEVICE_COOKIE, { signed: false });
  }

  /**
   * After a completed sign-in (password, and second factor when asked): a fresh device cookie
   * entry for the account. The counter of the entry it replaces was forgotten with the success.
   */
  function rememberDevice(ctx: ParameterizedContext, cookie: string | undefined, normalized: string) {
    ctx.append('Set-Cookie', deps.deviceCookies.header(deps.deviceCookies.issue(cookie, normalized).value));
  }

  /** Runs a check the attempt was reserved for; when it throws (it never ran to a verdict), the try is taken back. */
  async function verifiedOrReleased<T>(reservation: AttemptReservation, check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } catch (error) {
      await deps.throttle.release(reservation).catch(() => undefined);
      throw error;
    }
  }

  /** The code page for an enrolled user, or the enrollment page (QR, link, secret) for one who must enroll. */
  async function secondFactorPage(ctx: ParameterizedContext, uid: string, name: string, pending: PendingSignIn, error?: string, status = 200) {
    const common = {
      clientName: name,
      action: pageUrl(uid, '/second-factor'),
      abortAction: pageUrl(uid, '/abort'),
      csrf: deps.csrf.tokenFor(uid),
      error,
    };
    if (await deps.secondFactor.isEnrolled(pending.accountId)) {
      const remaining = await deps.secondFactor.remainingRecoveryCodes(pending.accountId);
      render(ctx, 'second-factor', { ...common, title: 'Two-step verification', fewRecoveryCodes: remaining <= FEW_RECOVERY_CODES ? remaining : undefined }, status);
      return;
    }
    const enrollment = await deps.secondFactor.enrollment(pending.accountId, pending.username);
    if (enrollment === undefined) throw new PageError(400, 'Request refused', 'Two-step verification could not be set up. Start again.');
    render(
      ctx,
      'enroll',
      {
        ...common,
        title: 'Set up two-step verification',
        qrSvg: await QRCode.toString(enrollment.uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }),
        uri: enrollment.uri,
        secretGroups: enrollment.secret.match(/.{1,4}/g) ?? [],
        account: pending.username,
        issuer: new URL(enrollment.uri).searchParams.get('issuer') ?? '',
      },
      status,
    );
  }

  async function finishSignIn(ctx: ParameterizedContext, details: Interaction, accountId: string, secondFactorUsed: boolean) {
    details.result = {
      login: secondFactorUsed
        ? { accountId, amr: ['pwd', 'otp'], acr: ACR_MFA, remember: true }
        : { accountId, amr: ['pwd'], acr: ACR_PASSWORD, remember: true },
    } satisfies InteractionResults;
    // What provider.interactionFinished(..., { mergeWithLastSubmission: false }) does, without
    // reading the interaction again: this request read it (and checked its cookie and session).
    await details.persist();
    ctx.status = 303;
    ctx.redirect(details.returnTo);
  }

  router.get('/:uid', async function showInteraction(ctx) {
    const provider = deps.providers.current();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const name = await clientName(details.params['client_id']);
    const pending = pendingOf(details);
    if (details.prompt.name === 'login' && pending !== undefined) {
      await secondFactorPage(ctx, details.uid, name, pending);
      return;
    }
    if (details.prompt.name === 'login') {
      const hint = details.params['login_hint'];
      loginPage(ctx, details.uid, name, { username: typeof hint === 'string' ? hint.slice(0, 256) : '' });
      return;
    }
    if (details.prompt.name === 'consent') {
      const promptDetails = details.prompt.details as {
        missingOIDCScope?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      const items = (promptDetails.missingOIDCScope ?? []).map((scope) => OIDC_SCOPE_WORDS[scope] ?? `Use "${scope}"`);
      for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
        const server = await deps.resourceServers.get(indicator);
        const label = server?.row.name ?? indicator;
        for (const scope of scopes) items.push(`Use "${scope}" on ${label}`);
      }
      const accountId = details.session?.accountId;
      const user = accountId === undefined ? undefined : await users.findById(accountId);
      render(ctx, 'consent', {
        title: 'Allow access',
        clientName: name,
        items,
        username: user?.username ?? '',
        action: pageUrl(details.uid, '/consent'),
        abortAction: pageUrl(details.uid, '/abort'),
        csrf: deps.csrf.tokenFor(details.uid),
      });
      return;
    }
    throw new PageError(400, 'Request refused', 'This sign-in step is not supported.');
  });

  router.post('/:uid/login', async function submitLogin(ctx) {
    const uid = param(ctx, 'uid');
    const provider = deps.providers.current();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'login' || details.uid !== uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    const form = await checkedForm(ctx, uid);
    // Looked up once: its name is on the page, its require_mfa decides the second factor.
    const client = await findClient(details.params['client_id']);
    const name = nameOf(client, details.params['client_id']);
    const username = (form['username'] ?? '').slice(0, 256);
    const password = form['password'] ?? '';
    // PostgreSQL text cannot hold U+0000 (no username contains it): refused here, not a failed query.
    if (username.trim() === '' || username.includes('\u0000') || password === '' || password.length > 1024) {
      loginPage(ctx, uid, name, { username, error: 'Enter your username and password.' }, 400);
      return;
    }

    const normalized = normalizeUsername(username);
    const device = deviceCookieOf(ctx);
    // A browser that signed in to this account before is charged to its own counter (OWASP device
    // cookies); anyone else to the account's (SPEC §4).
    const subject = subjectFor(normalized, deps.deviceCookies.nonceFor(device, normalized));
    // The attempt is counted before the password is checked, and the account read, in one statement.
    const attempt = await deps.throttle.reservePassword(normalized, subject, ctx.ip);
    if (!attempt.allowed) {
      deps.metrics.loginOutcomes.inc({ outcome: 'throttled' });
      ctx.set('Retry-After', String(attempt.retryAfter));
      loginPage(ctx, uid, name, { username, error: SIGN_IN_FAILED }, 429);
      return;
    }
    const { user, reservation } = attempt;

    // Always one argon2 verify, against a dummy hash when the user is unknown: same time either way.
    const passwordOk = await verifiedOrReleased(reservation, () => deps.passwords.verify(user?.password_hash, password, { clientIp: ctx.ip }));
    if (user === undefined || !passwordOk || user.disabled) {
      // Already counted by the reservation; whether it locked the account is known from it.
      const accountLocked = attempt.subjectLocked;
      const context = auditContext(ctx, user?.id ?? null);
      const failure = (tx: Queryable) =>
        recordAudit(tx, context, { type: 'login.failure', target: user?.id ?? 'unknown', outcome: 'failure', details: { client_id: details.params['client_id'] } });
      if (accountLocked) {
        await deps.db.transaction(async (tx) => {
          await failure(tx);
          await recordAudit(tx, context, { type: 'login.locked', target: user?.id ?? 'unknown', outcome: 'failure' });
        });
      } else {
        await failure(deps.db);
      }
      deps.metrics.loginOutcomes.inc({ outcome: accountLocked ? 'locked' : 'failure' });
      if (accountLocked) deps.metrics.lockouts.inc();
      loginPage(ctx, uid, name, { username, error: SIGN_IN_FAILED }, 401);
      return;
    }

    if (deps.passwords.needsRehash(user.password_hash)) {
      await users.setPasswordHash(user.id, await deps.passwords.hash(password), { changed: false });
    }
    const needsSecondFactor = secondFactorRequired({
      userRequiresMfa: user.mfa_required,
      clientRequiresMfa: (client as unknown as { require_mfa?: unknown } | undefined)?.require_mfa === true,
      acrValues: details.params['acr_values'],
      enrolled: user.mfa_enrolled,
    });
    const success = (tx: Queryable) =>
      recordAudit(tx, auditContext(ctx, user.id), { type: 'login.success', target: user.id, details: { client_id: details.params['client_id'] } });
    if (!needsSecondFactor) {
      // The subject's failures are forgotten with the success, in its audit transaction.
      await deps.db.transaction(async (tx) => {
        await success(tx);
        await deps.throttle.succeeded(reservation, tx);
      });
      rememberDevice(ctx, device, normalized);
      deps.metrics.loginOutcomes.inc({ outcome: 'success' });
      await finishSignIn(ctx, details, user.id, false);
      return;
    }
    // The password was right; the sign-in completes after the second factor (or its enrollment).
    // The right password is no failure, but earlier failures are forgotten only then: wrong codes
    // count toward the lockout, and a new attempt with the known password must not wipe them.
    const attemptId = randomBytes(16).toString('base64url');
    await deps.db.transaction(async (tx) => {
      await success(tx);
      await deps.throttle.release(reservation, tx);
      // As long as the interaction lives (its expiry does not move when it is saved again).
      await createCodeAttemptStore(tx).open(attemptId, user.id, Math.max(60, details.exp - Math.floor(Date.now() / 1000)) + 60);
    });
    await savePending(details, { accountId: user.id, username: user.username, normalized, subject, attemptId });
    ctx.status = 303;
    ctx.redirect(pageUrl(uid));
  });

  router.post('/:uid/second-factor', async function submitSecondFactor(ctx) {
    const uid = param(ctx, 'uid');
    const provider = deps.providers.current();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const pending = pendingOf(details);
    if (details.prompt.name !== 'login' || details.uid !== uid || pending === undefined) {
      throw new PageError(400, 'Request refused', 'This sign-in step is not available. Go back to the application and start again.');
    }
    const form = await checkedForm(ctx, uid);
    const name = await clientName(details.params['client_id']);
    const audit = auditContext(ctx, pending.accountId);

    // After enrollment the recovery-codes page continues here.
    if (pending.enrolled === true) {
      deps.metrics.loginOutcomes.inc({ outcome: 'success' });
      await finishSignIn(ctx, details, pending.accountId, true);
      return;
    }

    const endAttempt = async (save: boolean) => {
      // The database already refuses this attempt's codes; the interaction forgets it so that the
      // page asks for the password again. (A post refused by the count does not save: it must not
      // overwrite what a concurrent, allowed post of the same attempt saved.)
      if (save) await savePending(details, undefined);
      loginPage(ctx, uid, name, { username: pending.username, error: 'Too many wrong codes. Sign in again.' }, 401);
    };

    // Each post takes one of the attempt's five tries before anything is checked (SPEC §4), in one
    // atomic update: concurrent posts, on any instance, get five tries between them.
    const tries = await codeAttempts.take(pending.attemptId, pending.accountId, MAX_CODE_FAILURES);
    if (tries === undefined) {
      deps.metrics.loginOutcomes.inc({ outcome: 'second_factor_failure' });
      await endAttempt(false);
      return;
    }
    /** A refused code: the page again, or the end of the attempt at its fifth try. */
    const refuseCode = async (message: string, status: number) => {
      if (tries >= MAX_CODE_FAILURES) {
        await endAttempt(true);
        return;
      }
      await secondFactorPage(ctx, uid, name, pending, message, status);
    };

    // The code is counted toward the lockout before it is checked. While the account (or device,
    // or address) is locked no code is checked, so attempts opened before the lock cannot go on
    // guessing (SPEC §4); the refusal still used one of this attempt's five tries.
    const attempt = await deps.throttle.reserveCode(pending.subject, ctx.ip);
    if (!attempt.allowed) {
      deps.metrics.loginOutcomes.inc({ outcome: 'throttled' });
      ctx.set('Retry-After', String(attempt.retryAfter));
      await refuseCode('Too many failed attempts. Wait a few minutes, then enter a new code.', 429);
      return;
    }
    const { reservation } = attempt;

    const code = (form['code'] ?? '').slice(0, 64);
    const device = deviceCookieOf(ctx);
    if (await deps.secondFactor.isEnrolled(pending.accountId)) {
      const result = await verifiedOrReleased(reservation, () => deps.secondFactor.verify(pending.accountId, code, audit));
      if (result.ok) {
        await deps.db.transaction(async (tx) => {
          await deps.throttle.succeeded(reservation, tx);
          await codeAttempts.close(pending.attemptId, tx);
          await recordAudit(tx, audit, { type: 'login.success', target: pending.accountId, details: { second_factor: result.method } });
        });
        rememberDevice(ctx, device, pending.normalized);
        deps.metrics.loginOutcomes.inc({ outcome: 'success' });
        await finishSignIn(ctx, details, pending.accountId, true);
        return;
      }
    } else {
      const codes = await verifiedOrReleased(reservation, () => deps.secondFactor.confirmEnrollment(pending.accountId, code, audit));
      if (codes !== undefined) {
        await deps.db.transaction(async (tx) => {
          await deps.throttle.succeeded(reservation, tx);
          await codeAttempts.close(pending.attemptId, tx);
        });
        rememberDevice(ctx, device, pending.normalized);
        await savePending(details, { ...pending, enrolled: true });
        render(ctx, 'recovery-codes', {
          title: 'Save your recovery codes',
          clientName: name,
          codes,
          action: pageUrl(uid, '/second-factor'),
          csrf: deps.csrf.tokenFor(uid),
        });
        return;
      }
    }

    // The wrong code stays counted toward the lockout; five end this sign-in attempt.
    const accountLocked = attempt.subjectLocked;
    await deps.db.transaction(async (tx) => {
      await recordAudit(tx, audit, { type: 'mfa.failure', target: pending.accountId, outcome: 'failure', details: { failures: tries } });
      if (accountLocked) await recordAudit(tx, audit, { type: 'login.locked', target: pending.accountId, outcome: 'failure' });
    });
    if (accountLocked) deps.metrics.lockouts.inc();
    deps.metrics.loginOutcomes.inc({ outcome: 'second_factor_failure' });
    await refuseCode('That code is not right. Enter the current 6-digit code, or a recovery code.', 401);
  });

  router.post('/:uid/consent', async function submitConsent(ctx) {
    const uid = param(ctx, 'uid');
    const provider = deps.providers.current();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'consent' || details.uid !== uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    await checkedForm(ctx, uid);
    const accountId = details.session?.accountId;
    const clientId = details.params['client_id'];
    if (accountId === undefined || typeof clientId !== 'string') throw new PageError(400, 'Sign-in expired', 'Sign in again.');
    const promptDetails = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const grant = details.grantId === undefined ? new provider.Grant({ accountId, clientId }) : await provider.Grant.find(details.grantId);
    if (grant === undefined) throw new PageError(400, 'Sign-in expired', 'Sign in again.');
    if (promptDetails.missingOIDCScope !== undefined) grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
    if (promptDetails.missingOIDCClaims !== undefined) grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const result: InteractionResults = { consent: details.grantId === undefined ? { grantId } : {} };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.respond = false;
  });

  router.post('/:uid/abort', async function abortInteraction(ctx) {
    const uid = param(ctx, 'uid');
    const provider = deps.providers.current();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    await checkedForm(ctx, uid);
    const result: InteractionResults = { error: 'access_denied', error_description: 'The person cancelled the request.' };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.respond = false;
  });

  return router;
}
