import { parseOrThrow } from '../../management/errors.js';
import type { ClientResponse } from '../../management/clients/presenter.js';
import { AUTH_METHODS, clientListQuery, createClientBody, GRANT_TYPES } from '../../management/clients/schema.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, record, table, type Command, type Output } from '../command.js';
import { withServices } from '../context.js';
import { given, readJsonFile, splitScopes } from '../input.js';

/** The one-time secret, shown as `client_id` / `client_secret` lines a script can pick out. */
export function printCredentials(output: Output, result: { client_id: string; client_secret?: string | undefined }): void {
  if (output.json) return printJson(output, result);
  output.out(record({ client_id: result.client_id, client_secret: result.client_secret }));
  if (result.client_secret !== undefined) output.err('Store the client_secret now: it is not shown again (Gatehouse keeps only a hash of it).\n');
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
    ],
    options: {
      name: { type: 'string', value: 'NAME', field: 'client_name', help: 'client_name, shown on consent pages and in lists (default: the client_id)' },
      grant: { type: 'string', multiple: true, value: 'GRANT', field: 'grant_types', help: `grant type: ${GRANT_TYPES.join(', ')} (default: authorization_code)` },
      resource: { type: 'string', multiple: true, value: 'URI', field: 'allowed_resources', help: 'identifier of a resource server the client may get tokens for' },
      scope: { type: 'string', multiple: true, value: 'SCOPES', field: 'scope', help: 'scopes the client may ask for, space-separated' },
      'redirect-uri': { type: 'string', multiple: true, value: 'URI', field: 'redirect_uris', help: 'redirect URI for the authorization_code grant (https, or http on loopback)' },
      'post-logout-redirect-uri': { type: 'string', multiple: true, value: 'URI', field: 'post_logout_redirect_uris', help: 'where RP-initiated logout may return to' },
      'auth-method': { type: 'string', value: 'METHOD', field: 'token_endpoint_auth_method', help: `token endpoint authentication: ${AUTH_METHODS.join(', ')} (default: client_secret_basic)` },
      'jwks-uri': { type: 'string', value: 'URL', field: 'jwks_uri', help: "https URL of the client's public keys (private_key_jwt)" },
      'jwks-file': { type: 'string', value: 'PATH', field: 'jwks', help: `file holding the client's public JWK Set {"keys": [...]} (private_key_jwt)` },
      'require-mfa': { type: 'boolean', field: 'require_mfa', help: 'people signing in through this client must pass a second factor' },
      'first-party': { type: 'boolean', field: 'first_party', help: "the organisation's own app: people are not asked for consent" },
    },
    examples: [
      'gatehouse clients create --name billing --grant client_credentials --resource https://billing.example.com --scope "invoices:read invoices:write"',
      'gatehouse clients create --name shop --grant authorization_code --grant refresh_token --redirect-uri https://shop.example.com/callback --scope "openid profile" --first-party',
      'gatehouse clients create --name spa --grant authorization_code --auth-method none --redirect-uri http://127.0.0.1:5173/callback',
    ],
    async run(invocation) {
      const body: Record<string, unknown> = {};
      given(body, 'client_name', invocation.string('name'));
      given(body, 'grant_types', invocation.strings('grant'), (list) => list.length > 0);
      given(body, 'allowed_resources', invocation.strings('resource'), (list) => list.length > 0);
      given(body, 'scope', splitScopes(invocation.strings('scope')).join(' '), (scope) => scope !== '');
      given(body, 'redirect_uris', invocation.strings('redirect-uri'), (list) => list.length > 0);
      given(body, 'post_logout_redirect_uris', invocation.strings('post-logout-redirect-uri'), (list) => list.length > 0);
      given(body, 'token_endpoint_auth_method', invocation.string('auth-method'));
      given(body, 'jwks_uri', invocation.string('jwks-uri'));
      const jwksFile = invocation.string('jwks-file');
      if (jwksFile !== undefined) body['jwks'] = await readJsonFile('--jwks-file', jwksFile);
      if (invocation.flag('require-mfa')) body['require_mfa'] = true;
      if (invocation.flag('first-party')) body['first_party'] = true;
      const definition = parseOrThrow(createClientBody, body, 'input');

      const client = await withServices(invocation.output, ({ services, audit }) => services.clients.create(definition, audit));
      printCredentials(invocation.output, client);
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
