import { randomUUID } from 'node:crypto';

/**
 * Gatehouse's own client for browser sign-in on protected hosts (SPEC §7): the gateway sends a
 * browser without a session through a code flow with PKCE to `<host>/.gatehouse/callback`, and
 * redeems the code in-process (src/oidc/gateway-code.ts). It is not a row in the clients table:
 * nobody registers or manages it, and its redirect URIs follow the gateway routes that ask for
 * browser sign-in. The provider finds it through the client adapter (src/oidc/adapter.ts).
 */
export const GATEWAY_CLIENT_ID = 'gatehouse-gateway';

/** The gateway's callback and sign-in paths on every protected host. */
export const GATEWAY_CALLBACK_PATH = '/.gatehouse/callback';

/** RFC 6761: `.invalid` never resolves. Stands in when only wildcard hosts have browser routes. */
const PLACEHOLDER_REDIRECT = 'https://gateway.invalid/.gatehouse/callback';

/**
 * Whether `redirectUri` is `<http|https>://<host>/.gatehouse/callback` for a host with a browser
 * route: an exact host, or a subdomain of a `*.` wildcard host.
 */
export function gatewayCallbackAllowed(redirectUri: string, browserHosts: readonly string[]): boolean {
  if (!URL.canParse(redirectUri)) return false;
  const url = new URL(redirectUri);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return false;
  if (url.pathname !== GATEWAY_CALLBACK_PATH || url.search !== '' || url.hash !== '') return false;
  // The URL parser drops a default port; the routes name the host as the client asked for it.
  if (`${url.protocol}//${url.host}${GATEWAY_CALLBACK_PATH}` !== redirectUri) return false;
  const host = url.host;
  return browserHosts.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === host;
    const colon = pattern.lastIndexOf(':');
    const [suffix, port] = colon > 0 ? [pattern.slice(1, colon), pattern.slice(colon + 1)] : [pattern.slice(1), undefined];
    const hostColon = host.lastIndexOf(':');
    const [name, hostPort] = hostColon > 0 && !host.endsWith(']') ? [host.slice(0, hostColon), host.slice(hostColon + 1)] : [host, undefined];
    if (port !== undefined && port !== hostPort) return false;
    return name.endsWith(suffix) && name.length > suffix.length;
  });
}

/**
 * The gateway client's metadata, or undefined while no route asks for browser sign-in (then it
 * does not exist). `browser_hosts` travels as extra metadata for the redirect check
 * (src/oidc/model-extensions.ts). It authenticates with a secret no one holds (a random value
 * that is no stored hash, so no comparison succeeds): only Gatehouse itself redeems its codes.
 */
export function gatewayClientMetadata(browserHosts: readonly string[]): Record<string, unknown> | undefined {
  if (browserHosts.length === 0) return undefined;
  const exact = browserHosts.filter((host) => !host.startsWith('*.'));
  const redirectUris = exact.flatMap((host) => [`https://${host}${GATEWAY_CALLBACK_PATH}`, `http://${host}${GATEWAY_CALLBACK_PATH}`]);
  return {
    client_id: GATEWAY_CLIENT_ID,
    client_name: 'Gatehouse gateway',
    client_secret: `unusable:${randomUUID()}`,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: redirectUris.length > 0 ? redirectUris : [PLACEHOLDER_REDIRECT],
    scope: 'openid',
    registered_scope: 'openid',
    allowed_resources: [],
    first_party: true,
    require_mfa: false,
    tokens_not_before: 0,
    browser_hosts: [...browserHosts],
  };
}

/** The hosts a gateway client's metadata carries (see gatewayClientMetadata). */
export function browserHostsOf(client: object): readonly string[] | undefined {
  const value = (client as { browser_hosts?: unknown }).browser_hosts;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}
