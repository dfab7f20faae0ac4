import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import type { CookieClient} from './cookie-client.js';
import { formAction, hiddenField } from './cookie-client.js';

/** Starts an authorization request in `browser` and returns the first page it lands on (login, consent or a redirect). */
export async function startAuthorization(browser: CookieClient, config: oidc.Configuration, serverUrl: string, params: Record<string, string>): Promise<Response> {
  return browser.follow(await browser.get(oidc.buildAuthorizationUrl(config, params)), serverUrl);
}

/** Opens a ready-made authorization URL (e.g. from buildAuthorizationUrlWithPAR) in `browser`. */
export async function openAuthorizationUrl(browser: CookieClient, url: URL, serverUrl: string): Promise<Response> {
  return browser.follow(await browser.get(url), serverUrl);
}

/** Submits the login form on `html`; returns where that leads (following redirects on the server's origin). */
export async function submitLogin(browser: CookieClient, serverUrl: string, html: string, credentials: { username: string; password: string }): Promise<Response> {
  const action = formAction(html, /\/login$/);
  assert.ok(action, 'a login form');
  const posted = await browser.postForm(new URL(action, serverUrl), { csrf: hiddenField(html, 'csrf') ?? '', ...credentials });
  return browser.follow(posted, serverUrl);
}

/**
 * The whole browser part of a sign-in: login (if asked), consent (if asked), and the redirect
 * back to the client. Returns the callback URL and the HTML of every page shown.
 */
export async function signIn(
  browser: CookieClient,
  config: oidc.Configuration,
  serverUrl: string,
  params: Record<string, string>,
  credentials: { username: string; password: string },
): Promise<{ callback: URL; pages: string[] }> {
  return signInAt(browser, oidc.buildAuthorizationUrl(config, params), serverUrl, credentials);
}

/** signIn from an authorization URL the caller built (a pushed request's, RFC 9126 §4). */
export async function signInAt(browser: CookieClient, url: URL, serverUrl: string, credentials: { username: string; password: string }): Promise<{ callback: URL; pages: string[] }> {
  const pages: string[] = [];
  let page = await openAuthorizationUrl(browser, url, serverUrl);
  const redirect = () => ({ callback: new URL(page.headers.get('location')!), pages });
  if (page.status >= 300 && page.status < 400) return redirect();
  let html = await page.text();
  pages.push(html);
  if (html.includes('name="password"')) {
    page = await submitLogin(browser, serverUrl, html, credentials);
    if (page.status >= 300 && page.status < 400) return redirect();
    html = await page.text();
    pages.push(html);
  }
  assert.match(html, /Allow access/, 'the consent page');
  const action = formAction(html, /\/consent$/);
  assert.ok(action, 'a consent form');
  page = await browser.follow(await browser.postForm(new URL(action, serverUrl), { csrf: hiddenField(html, 'csrf') ?? '' }), serverUrl);
  assert.ok(page.status >= 300 && page.status < 400, `expected the redirect to the client, got ${page.status}`);
  return redirect();
}

/** Fresh PKCE, state and nonce, and the authorization parameters that use them. */
export async function pkceParams(redirectUri: string, scope: string, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  return {
    verifier,
    state,
    nonce,
    params: {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra,
    },
  };
}
