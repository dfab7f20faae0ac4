import type Koa from 'koa';

/**
 * SPEC §1: every URL Gatehouse advertises starts with ISSUER, whatever Host, X-Forwarded-Host,
 * X-Forwarded-Proto or transport a request arrived with. oidc-provider (and Koa's `ctx.href`,
 * `ctx.URL`, `ctx.secure`, `ctx.cookies`) build URLs and decide cookie security from the request's
 * protocol and host; this pins both, for every request the app serves, to ISSUER's. A Host header
 * is the client's to choose and a forwarded one the nearest proxy's: neither may decide where
 * discovery sends clients, where a sign-in form posts or whether a session cookie is Secure.
 *
 * Only `protocol` and `host` are overridden (`hostname`, `href`, `URL`, `secure` and the cookie
 * jar derive from them); `ip` and `ips` keep Koa's own semantics under `app.proxy` (TRUST_PROXY).
 */
export function pinRequestOriginToIssuer(app: Koa, issuer: string): void {
  const { protocol, host } = new URL(issuer);
  const scheme = protocol.slice(0, -1);
  Object.defineProperties(app.request, {
    protocol: { get: () => scheme, configurable: true },
    host: { get: () => host, configurable: true },
  });
}

/**
 * ISSUER's path without a trailing slash ('' for an issuer at the root). Gatehouse serves its
 * routes at the root of its listener; a proxy in front that publishes it under a path strips
 * that path, so advertised URLs carry it and routes do not.
 */
export function issuerPath(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, '');
}
