import { X509Certificate } from 'node:crypto';
import { parseOrThrow } from '../../management/errors.js';
import type { ClientResponse } from '../../management/clients/presenter.js';
import { AUTH_METHODS, clientListQuery, createClientBody, DEVICE_CODE_GRANT, GRANT_TYPES, TLS_SUBJECT_FIELDS, TOKEN_EXCHANGE_GRANT } from '../../management/clients/schema.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, record, table, UsageError, type Command, type Output } from '../command.js';
import { withServices } from '../context.js';
import { given, readCertificateJwk, readJsonFile, splitScopes } from '../input.js';

/**
 * The one-time secret, shown as `client_id` / `client_secret` lines a script can pick out; `shown`
 * adds lines after them (the JSON is the whole result either way).
 */
export function printCredentials(output: Output, result: { client_id: string; client_secret?: string | undefined }, shown: Readonly<Record<string, unknown>> = {}): void {
  if (output.json) return printJson(output, result);
  output.out(record({ client_id: result.client_id, client_secret: result.client_secret, ...shown }));
  if (result.client_secret !== undefined) output.err('Store the client_secret now: it is not shown again (Gatehouse keeps only a hash of it).\n');
}

/** The registered certificates' SHA-256 fingerprints, as `openssl x509 -noout -fingerprint -sha256` prints them. */
function certificateFingerprints(keys: readonly Record<string, unknown>[]): string[] {
  return keys.flatMap((key) => {
    const first: unknown = Array.isArray(key['x5c']) ? key['x5c'][0] : undefined;
    return typeof first === 'string' ? [new X509Certificate(Buffer.from(first, 'base64')).fingerprint256] : [];
  });
}

/** `--grant token-exchange`, `--grant device-code`: the grants' URNs are long to type; the URNs themselves work too. */
const GRANT_ALIASES: Readonly<Record<string, string>> = { 'token-exchange': TOKEN_EXCHANGE_GRANT, 'device-code': DEVICE_CODE_GRANT };
const GRANT_NAMES = GRANT_TYPES.map((grant) => Object.keys(GRANT_ALIASES).find((alias) => GRANT_ALIASES[alias] === grant) ?? grant);

const CERTIFICATE_AUTH_METHODS: readonly string[] = ['tls_client_auth', 'self_signed_tls_client_auth'];

/** SPEC §8: how the client proves itself and what its tokens are bound to, when that is more than a secret. */
function senderConstraintOf(client: ClientResponse): Record<string, unknown> {
  return {
    ...(CERTIFICATE_AUTH_METHODS.includes(client.token_endpoint_auth_method) ? { token_endpoint_auth_method: client.token_endpoint_auth_method } : {}),
    ...Object.fromEntries(TLS_SUBJECT_FIELDS.flatMap((field) => (client[field] === undefined ? [] : [[field, client[field]]]))),
    ...(client.token_endpoint_auth_method === 'self_signed_tls_client_auth' && client.jwks !== undefined ? { certificate_sha256: certificateFingerprints(client.jwks.keys) } : {}),
    ...(client.tls_client_certificate_bound_access_tokens ? { tls_client_certificate_bound_access_tokens: true } : {}),
    ...(client.dpop_bound_access_tokens ? { dpop_bound_access_tokens: true } : {}),
  };
}

/** SPEC §12: the client must push its authorization requests (RFC 9126). */
function pushedRequestsOf(client: ClientResponse): Record<string, unknown> {
  return client.require_pushed_authorization_requests ? { require_pushed_authorization_requests: true } : {};
}

/** SPEC §9: whose tokens the client may exchange, for a client with the token-exchange grant. */
function tokenExchangeOf(client: ClientResponse): Record<string, unknown> {
  return client.token_exchange === undefined ? {} : { 'token_exchange.subject_audiences': client.token_exchange.subject_audiences };
}

function clientRow(client: ClientResponse): string[] {
  return [client.client_id, client.client_name, client.grant_types.join(','), client.token_endpoint_auth_method, client.allowed_resources.join(',')];
}

const CLIENT_ID = { min: 1, max: 1 } as const;

export const clientCommands: readonly Command[] = [
  {
    path: ['clients', 'create'],
    usage: '--name NAME --grant GRANT [--grant GRANT ...] [options]',
    summary: 'register a client; prints client_id and client_secret (once)',
    description: [
      'Registers an OAuth client, validated exactly as POST /admin/v1/clients validates it (RFC 7591 metadata), and records a client.created audit event with actor "cli".',
      'Prints client_id and, for client_secret_basic and client_secret_post, client_secret: Gatehouse keeps only a hash, so the secret is shown this once (use clients rotate-secret to issue a new one).',
      'Certificate clients (RFC 8705) get no secret. A tls_client_auth client presents a certificate that chains to TLS_CLIENT_CA_FILE and registers exactly one of --tls-subject-dn, --tls-san-dns, --tls-san-uri, --tls-san-ip or --tls-san-email. A self_signed_tls_client_auth client registers the certificate itself: --certificate-file (repeatable, to register the next certificate before the current one expires), or --jwks-file with keys that carry x5c.',
      `Token exchange (RFC 8693): --grant token-exchange (short for ${TOKEN_EXCHANGE_GRANT}) lets a service trade an access token it received for one to the next service, on behalf of the same person or service. It needs --exchange-subject-audience for each resource server whose tokens it may exchange (token_exchange.subject_audiences), and the next service in --resource. The output then lists token_exchange.subject_audiences after client_id.`,
      `Device grant (RFC 8628): --grant device-code (short for ${DEVICE_CODE_GRANT}) is for command-line tools and devices without a browser: the tool shows a code, the person enters it at ISSUER/device and signs in there. Such a tool is usually public (--auth-method none) and has no redirect URI; add --grant refresh_token for long sessions.`,
      'Sender-constrained tokens: --certificate-bound-tokens binds tokens to the client certificate the request came with (cnf.x5t#S256); --dpop-bound-tokens makes a DPoP proof (RFC 9449) mandatory on every token request and binds tokens to its key (cnf.jkt). The output then lists these settings after client_id.',
    ],
    options: {
      name: { type: 'string', value: 'NAME', field: 'client_name', help: 'client_name, shown on consent pages and in lists (default: the client_id)' },
      grant: { type: 'string', multiple: true, value: 'GRANT', field: 'grant_types', help: `grant type: ${GRANT_NAMES.join(', ')} (its URN works too) (default: authorization_code)` },
      resource: { type: 'string', multiple: true, value: 'URI', field: 'allowed_resources', help: 'identifier of a resource server the client may get tokens for' },
      scope: { type: 'string', multiple: true, value: 'SCOPES', field: 'scope', help: 'scopes the client may ask for, space-separated' },
      'redirect-uri': { type: 'string', multiple: true, value: 'URI', field: 'redirect_uris', help: 'redirect URI for the authorization_code grant (https, or http on loopback)' },
      'post-logout-redirect-uri': { type: 'string', multiple: true, value: 'URI', field: 'post_logout_redirect_uris', help: 'where RP-initiated logout may return to' },
      'auth-method': { type: 'string', value: 'METHOD', field: 'token_endpoint_auth_method', help: `token endpoint authentication: ${AUTH_METHODS.join(', ')} (default: client_secret_basic)` },
      'jwks-uri': { type: 'string', value: 'URL', field: 'jwks_uri', help: "https URL of the client's public keys (private_key_jwt)" },
      'jwks-file': { type: 'string', value: 'PATH', field: 'jwks', help: `file holding the client's public JWK Set {"keys": [...]} (private_key_jwt; self_signed_tls_client_auth with x5c)` },
      'certificate-file': {
        type: 'string',
        multiple: true,
        value: 'PEM',
        field: 'jwks',
        help: "the client's own certificate (PEM or DER), registered in its jwks with x5c (self_signed_tls_client_auth; not with --jwks-file)",
      },
      'tls-subject-dn': { type: 'string', value: 'DN', field: 'tls_client_auth_subject_dn', help: 'tls_client_auth: the certificate subject, an RFC 4514 DN such as "CN=orders,O=Example" (compared as a DN)' },
      'tls-san-dns': { type: 'string', value: 'NAME', field: 'tls_client_auth_san_dns', help: 'tls_client_auth: a DNS name in the certificate subjectAltName' },
      'tls-san-uri': { type: 'string', value: 'URI', field: 'tls_client_auth_san_uri', help: 'tls_client_auth: a URI in the certificate subjectAltName, e.g. a SPIFFE ID' },
      'tls-san-ip': { type: 'string', value: 'IP', field: 'tls_client_auth_san_ip', help: 'tls_client_auth: an IPv4 or IPv6 address in the certificate subjectAltName' },
      'tls-san-email': { type: 'string', value: 'EMAIL', field: 'tls_client_auth_san_email', help: 'tls_client_auth: an email address in the certificate subjectAltName' },
      'certificate-bound-tokens': {
        type: 'boolean',
        field: 'tls_client_certificate_bound_access_tokens',
        help: 'bind access tokens to the client certificate of the token request (RFC 8705 cnf.x5t#S256)',
      },
      'dpop-bound-tokens': { type: 'boolean', field: 'dpop_bound_access_tokens', help: 'every token request must carry a DPoP proof; tokens are bound to its key (RFC 9449 cnf.jkt)' },
      'exchange-subject-audience': {
        type: 'string',
        multiple: true,
        value: 'URI',
        field: 'token_exchange',
        help: 'token-exchange: identifier of a resource server whose access tokens the client may exchange (RFC 8693 subject_token)',
      },
      'require-mfa': { type: 'boolean', field: 'require_mfa', help: 'people signing in through this client must pass a second factor' },
      'first-party': { type: 'boolean', field: 'first_party', help: "the organisation's own app: people are not asked for consent" },
      'require-par': {
        type: 'boolean',
        field: 'require_pushed_authorization_requests',
        help: 'authorization requests must be pushed to the PAR endpoint first (RFC 9126); plain ones are refused',
      },
    },
    examples: [
      'gatehouse clients create --name billing --grant client_credentials --resource https://billing.example.com --scope "invoices:read invoices:write"',
      'gatehouse clients create --name shop --grant authorization_code --grant refresh_token --redirect-uri https://shop.example.com/callback --scope "openid profile" --first-party',
      'gatehouse clients create --name spa --grant authorization_code --auth-method none --redirect-uri http://127.0.0.1:5173/callback',
      'gatehouse clients create --name orders-worker --grant client_credentials --auth-method tls_client_auth --tls-subject-dn "CN=orders-worker,O=Example" --certificate-bound-tokens --resource https://orders.example.com --scope orders:read',
      'gatehouse clients create --name edge-agent --grant client_credentials --auth-method self_signed_tls_client_auth --certificate-file edge-agent.pem --certificate-bound-tokens',
      'gatehouse clients create --name spa --grant authorization_code --grant refresh_token --auth-method none --redirect-uri https://app.example.com/callback --dpop-bound-tokens',
      'gatehouse clients create --name deploy-cli --grant device-code --grant refresh_token --auth-method none --scope "openid profile offline_access"',
      'gatehouse clients create --name orders-to-payments --grant token-exchange --exchange-subject-audience https://orders.example.com --resource https://payments.example.com --scope payments:charge',
    ],
    async run(invocation) {
      const body: Record<string, unknown> = {};
      given(body, 'client_name', invocation.string('name'));
      given(
        body,
        'grant_types',
        invocation.strings('grant').map((grant) => (Object.hasOwn(GRANT_ALIASES, grant) ? GRANT_ALIASES[grant]! : grant)),
        (list) => list.length > 0,
      );
      given(body, 'allowed_resources', invocation.strings('resource'), (list) => list.length > 0);
      given(body, 'scope', splitScopes(invocation.strings('scope')).join(' '), (scope) => scope !== '');
      given(body, 'redirect_uris', invocation.strings('redirect-uri'), (list) => list.length > 0);
      given(body, 'post_logout_redirect_uris', invocation.strings('post-logout-redirect-uri'), (list) => list.length > 0);
      given(body, 'token_endpoint_auth_method', invocation.string('auth-method'));
      given(body, 'jwks_uri', invocation.string('jwks-uri'));
      const jwksFile = invocation.string('jwks-file');
      const certificateFiles = invocation.strings('certificate-file');
      if (jwksFile !== undefined && certificateFiles.length > 0) throw new UsageError('give --jwks-file or --certificate-file, not both');
      if (jwksFile !== undefined) body['jwks'] = await readJsonFile('--jwks-file', jwksFile);
      if (certificateFiles.length > 0) body['jwks'] = { keys: await Promise.all(certificateFiles.map((file) => readCertificateJwk('--certificate-file', file))) };
      given(body, 'tls_client_auth_subject_dn', invocation.string('tls-subject-dn'));
      given(body, 'tls_client_auth_san_dns', invocation.string('tls-san-dns'));
      given(body, 'tls_client_auth_san_uri', invocation.string('tls-san-uri'));
      given(body, 'tls_client_auth_san_ip', invocation.string('tls-san-ip'));
      given(body, 'tls_client_auth_san_email', invocation.string('tls-san-email'));
      if (invocation.flag('certificate-bound-tokens')) body['tls_client_certificate_bound_access_tokens'] = true;
      if (invocation.flag('dpop-bound-tokens')) body['dpop_bound_access_tokens'] = true;
      const subjectAudiences = invocation.strings('exchange-subject-audience');
      if (subjectAudiences.length > 0) body['token_exchange'] = { subject_audiences: subjectAudiences };
      if (invocation.flag('require-mfa')) body['require_mfa'] = true;
      if (invocation.flag('first-party')) body['first_party'] = true;
      if (invocation.flag('require-par')) body['require_pushed_authorization_requests'] = true;
      const definition = parseOrThrow(createClientBody, body, 'input');

      const client = await withServices(invocation.output, ({ services, audit }) => services.clients.create(definition, audit));
      printCredentials(invocation.output, client, { ...senderConstraintOf(client), ...tokenExchangeOf(client), ...pushedRequestsOf(client) });
      return EXIT.ok;
    },
  },
  {
    path: ['clients', 'list'],
    summary: 'list clients',
    description: ['Lists clients in the order they were created, a page at a time, as GET /admin/v1/clients does.'],
    options: {
      'name-prefix': { type: 'string', value: 'PREFIX', field: 'client_name', help: 'only clients whose client_name starts with PREFIX (case-sensitive)' },
      ...PAGE_OPTIONS,
    },
    examples: ['gatehouse clients list', 'gatehouse clients list --name-prefix billing --json'],
    async run(invocation) {
      const query: Record<string, string> = pageQueryOf(invocation);
      given(query, 'client_name', invocation.string('name-prefix'));
      const parsed = parseOrThrow(clientListQuery, query, 'input');
      const page = await withServices(invocation.output, ({ services }) => services.clients.list(parsed));
      if (invocation.output.json) printJson(invocation.output, page);
      else {
        invocation.output.out(table(['CLIENT_ID', 'NAME', 'GRANTS', 'AUTH_METHOD', 'RESOURCES'], page.items.map(clientRow)));
        pageHint(invocation.output, page.next_cursor);
      }
      return EXIT.ok;
    },
  },
  {
    path: ['clients', 'show'],
    args: 'CLIENT_ID',
    positionals: CLIENT_ID,
    summary: 'show one client',
    description: ["Shows a client's metadata, as GET /admin/v1/clients/{client_id} does."],
    examples: ['gatehouse clients show JfPBaTJu3wUfQFC2LEWMVQ'],
    async run(invocation) {
      const clientId = invocation.positionals[0] ?? '';
      const client = await withServices(invocation.output, ({ services }) => services.clients.get(clientId));
      if (invocation.output.json) printJson(invocation.output, client);
      else invocation.output.out(record(client));
      return EXIT.ok;
    },
  },
  {
    path: ['clients', 'delete'],
    args: 'CLIENT_ID',
    positionals: CLIENT_ID,
    summary: 'delete a client and revoke its grants and refresh tokens',
    description: [
      'Deletes the client: it can no longer authenticate, and its grants, authorization codes and refresh tokens are revoked at once. Access tokens already issued are stateless JWTs and stay valid until they expire (access_token_ttl) at resource servers; the admin API itself refuses its tokens within seconds.',
    ],
    examples: ['gatehouse clients delete JfPBaTJu3wUfQFC2LEWMVQ'],
    async run(invocation) {
      const clientId = invocation.positionals[0] ?? '';
      await withServices(invocation.output, ({ services, audit }) => services.clients.delete(clientId, audit));
      if (invocation.output.json) printJson(invocation.output, { client_id: clientId, deleted: true });
      else invocation.output.out(`deleted client ${clientId}\n`);
      return EXIT.ok;
    },
  },
  {
    path: ['clients', 'rotate-secret'],
    args: 'CLIENT_ID',
    positionals: CLIENT_ID,
    summary: 'issue a new client secret; prints it once',
    description: [
      'Issues a new client_secret for a client that authenticates with one (client_secret_basic or client_secret_post). The old secret stops working at once, and the admin API refuses access tokens issued with it within seconds. The new one is printed this once (for a client of the admin API, once the second of the rotation is over, so that tokens obtained with it are told apart from older ones).',
    ],
    examples: ['gatehouse clients rotate-secret JfPBaTJu3wUfQFC2LEWMVQ', 'gatehouse clients rotate-secret JfPBaTJu3wUfQFC2LEWMVQ --json | jq -r .client_secret'],
    async run(invocation) {
      const clientId = invocation.positionals[0] ?? '';
      const rotated = await withServices(invocation.output, ({ services, audit }) => services.clients.rotateSecret(clientId, audit));
      printCredentials(invocation.output, rotated);
      return EXIT.ok;
    },
  },
];
