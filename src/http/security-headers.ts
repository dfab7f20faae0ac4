import type { Context, Middleware } from 'koa';

/**
 * Headers on every response. The CSP is for JSON and the hosted pages alike: no script at all
 * (the passkey pages and the console load script files from Gatehouse, with their own policies below),
 * styles only from our one stylesheet, never framed. `form-action` is left out on purpose:
 * Chromium applies it to the redirect chain after a form post, which ends at the client's
 * redirect_uri on another origin.
 */
function contentSecurityPolicy(scriptSrc: string, connectSrc?: string): string {
  return [
    "default-src 'none'",
    ...(connectSrc === undefined ? [] : [`connect-src ${connectSrc}`]),
    // Explicit so oidc-provider can append the hash of its one inline script (the form_post
    // response page); every other page runs no script at all.
    `script-src ${scriptSrc}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const CONTENT_SECURITY_POLICY = contentSecurityPolicy("'none'");

/** The console's pages (SPEC §11): the same, plus its one script file from Gatehouse; still no inline script. */
export const CONSOLE_CONTENT_SECURITY_POLICY = contentSecurityPolicy("'self'");

/**
 * The hosted pages that offer passkeys (SPEC §4): script files from Gatehouse (the WebAuthn
 * library and views/static/passkeys.js), which fetch their challenge from Gatehouse too.
 */
export const PASSKEY_PAGE_CONTENT_SECURITY_POLICY = contentSecurityPolicy("'self'", "'self'");

const HEADERS: readonly (readonly [string, string])[] = [
  ['Content-Security-Policy', CONTENT_SECURITY_POLICY],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-Frame-Options', 'DENY'],
  ['Referrer-Policy', 'no-referrer'],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()'],
];

/** Before the request is handled: the headers every response carries (a handler may tighten or relax its own). */
export function setSecurityHeaders(ctx: Context, options: { readonly hsts: boolean }): void {
  for (const [name, value] of HEADERS) ctx.set(name, value);
  if (options.hsts) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
}

/** After it: discovery and JWKS are fetched cross-origin by browser-based relying parties. */
export function allowCrossOriginFetches(ctx: Context): void {
  if (ctx.path.startsWith('/.well-known/') || ctx.path === '/jwks') ctx.set('Cross-Origin-Resource-Policy', 'cross-origin');
}

/** As middleware (the management port's app). */
export function securityHeaders(options: { readonly hsts: boolean }): Middleware {
  return async function securityHeadersMiddleware(ctx, next) {
    setSecurityHeaders(ctx, options);
    await next();
    allowCrossOriginFetches(ctx);
  };
}
