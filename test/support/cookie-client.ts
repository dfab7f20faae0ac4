/**
 * A tiny cookie-carrying HTTP client for driving the hosted pages without a browser: it keeps
 * cookies per name (path and domain are all "/" and one host in these tests), never follows
 * redirects by itself, and can follow a chain of them on request.
 */
export class CookieClient {
  readonly cookies = new Map<string, string>();
  private readonly routes = new Map<string, string>();

  /** `headers` go with every request (e.g. X-Forwarded-For: one client address per browser). */
  constructor(private readonly headers: Record<string, string> = {}) {}

  /**
   * As a load balancer would: requests for `issuer`'s origin go to `instance`. Instances share
   * one issuer, and every URL Gatehouse advertises (redirects, form actions) starts with it, so a
   * test that drives one particular instance routes the issuer to it.
   */
  routeTo(issuer: string, instance: string): void {
    const from = new URL(issuer).origin;
    const to = new URL(instance).origin;
    if (from === to) this.routes.delete(from);
    else this.routes.set(from, to);
  }

  private routed(url: string | URL): URL {
    const parsed = new URL(url);
    const to = this.routes.get(parsed.origin);
    return to === undefined ? parsed : new URL(`${parsed.pathname}${parsed.search}`, to);
  }

  private remember(response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=').slice(1).join('=')) < Date.now());
      if (value === '' || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(this.headers)) if (!headers.has(name)) headers.set(name, value);
    if (this.cookies.size > 0) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const response = await fetch(this.routed(url), { ...init, headers, redirect: 'manual' });
    this.remember(response);
    return response;
  }

  get(url: string | URL): Promise<Response> {
    return this.request(url);
  }

  postForm(url: string | URL, fields: Record<string, string>): Promise<Response> {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
    });
  }

  /**
   * Follows redirects from `response` while they stay on `origin`; returns the first response
   * that is not a redirect, or the redirect that leaves the origin (e.g. to the client's callback).
   */
  async follow(response: Response, origin: string, limit = 10): Promise<Response> {
    let current = response;
    for (let i = 0; i < limit; i += 1) {
      const location = current.headers.get('location');
      if (current.status < 300 || current.status >= 400 || location === null) return current;
      const next = this.routed(new URL(location, current.url || origin));
      if (next.origin !== new URL(origin).origin) return current;
      current = await this.get(next);
    }
    throw new Error('too many redirects');
  }
}

/** The value of a hidden form field in a page. */
export function hiddenField(html: string, name: string): string | undefined {
  const match = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  return match?.[1]?.replaceAll('&amp;', '&').replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>');
}

/** The action of the first form in a page whose action matches `pattern`. */
export function formAction(html: string, pattern: RegExp): string | undefined {
  for (const match of html.matchAll(/<form[^>]*action="([^"]*)"/g)) {
    if (pattern.test(match[1]!)) return match[1];
  }
  return undefined;
}
