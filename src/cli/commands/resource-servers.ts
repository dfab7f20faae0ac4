import { listQuery } from '../../management/pagination.js';
import { parseOrThrow } from '../../management/errors.js';
import type { ResourceServerResponse } from '../../management/resource-servers/presenter.js';
import { createResourceServerBody } from '../../management/resource-servers/schema.js';
import { SIGNING_ALGS } from '../../crypto/signing-keys.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, record, table, type Command } from '../command.js';
import { withServices } from '../context.js';
import { given, integerOrText, readJsonFile, splitScopes } from '../input.js';

function serverRow(server: ResourceServerResponse): string[] {
  return [
    server.id,
    server.identifier,
    server.name,
    server.scopes.join(','),
    String(server.access_token_ttl),
    server.signing_alg,
    server.inner_encryption_jwk === null ? 'no' : server.encrypt_whole_token ? 'whole token' : 'yes',
  ];
}

export const resourceServerCommands: readonly Command[] = [
  {
    path: ['resource-servers', 'create'],
    usage: '--identifier URI --name NAME [options]',
    summary: 'register an API that accepts Gatehouse access tokens',
    description: [
      'Registers a resource server, validated exactly as POST /admin/v1/resource-servers validates it. Clients name it by its identifier (RFC 8707 `resource`), which cannot change later.',
      'With --inner-jwk-file, tokens for it carry an inner layer encrypted to that public key, which only the holder of the private key can read; --encrypt-whole-token also encrypts the whole signed token to it (a nested JWT).',
    ],
    options: {
      identifier: { type: 'string', value: 'URI', field: 'identifier', help: 'absolute URI without a fragment, e.g. https://billing.example.com' },
      name: { type: 'string', value: 'NAME', field: 'name', help: 'a name for people' },
      scope: { type: 'string', multiple: true, value: 'SCOPE', field: 'scopes', help: 'a scope it defines (space-separated lists work too)' },
      ttl: { type: 'string', value: 'SECONDS', field: 'access_token_ttl', help: 'access token lifetime, 60 to 86400 (default 900)' },
      alg: { type: 'string', value: 'ALG', field: 'signing_alg', help: `token signing algorithm: ${SIGNING_ALGS.join(', ')} (default ES256)` },
      'inner-jwk-file': { type: 'string', value: 'PATH', field: 'inner_encryption_jwk', help: 'file holding the public JWK (EC, X25519 or RSA) the inner layer is encrypted to' },
      'encrypt-whole-token': { type: 'boolean', field: 'encrypt_whole_token', help: 'also encrypt the whole signed token to that key (needs --inner-jwk-file)' },
      'token-format': { type: 'string', value: 'FORMAT', field: 'token_format', help: 'jwt (default) or reference: opaque tokens only introspection and the gateway accept' },
      'require-sender-constraint': { type: 'boolean', field: 'require_sender_constraint', help: 'issue only DPoP- or certificate-bound tokens for it' },
    },
    examples: [
      'gatehouse resource-servers create --identifier https://billing.example.com --name Billing --scope invoices:read --scope invoices:write',
      'gatehouse resource-servers create --identifier https://vault.example.com --name Vault --scope "secrets:read" --ttl 300 --inner-jwk-file vault-enc.pub.jwk',
    ],
    async run(invocation) {
      const body: Record<string, unknown> = {};
      given(body, 'identifier', invocation.string('identifier'));
      given(body, 'name', invocation.string('name'));
      given(body, 'scopes', splitScopes(invocation.strings('scope')), (list) => list.length > 0);
      const ttl = invocation.string('ttl');
      if (ttl !== undefined) body['access_token_ttl'] = integerOrText(ttl);
      given(body, 'signing_alg', invocation.string('alg'));
      const jwkFile = invocation.string('inner-jwk-file');
      if (jwkFile !== undefined) body['inner_encryption_jwk'] = await readJsonFile('--inner-jwk-file', jwkFile);
      if (invocation.flag('encrypt-whole-token')) body['encrypt_whole_token'] = true;
      given(body, 'token_format', invocation.string('token-format'));
      if (invocation.flag('require-sender-constraint')) body['require_sender_constraint'] = true;
      const definition = parseOrThrow(createResourceServerBody, body, 'input');

      const server = await withServices(invocation.output, ({ services, audit }) => services.resourceServers.create(definition, audit));
      if (invocation.output.json) printJson(invocation.output, server);
      else invocation.output.out(record({ ...server, inner_encryption_jwk: server.inner_encryption_jwk === null ? null : 'set' }));
      return EXIT.ok;
    },
  },
  {
    path: ['resource-servers', 'list'],
    summary: 'list resource servers',
    description: ['Lists resource servers in the order they were created (the built-in admin API one first), as GET /admin/v1/resource-servers does.'],
    options: { ...PAGE_OPTIONS },
    examples: ['gatehouse resource-servers list', 'gatehouse resource-servers list --json'],
    async run(invocation) {
      const query = parseOrThrow(listQuery, pageQueryOf(invocation), 'input');
      const page = await withServices(invocation.output, ({ services }) => services.resourceServers.list(query));
      if (invocation.output.json) printJson(invocation.output, page);
      else {
        invocation.output.out(table(['ID', 'IDENTIFIER', 'NAME', 'SCOPES', 'TTL', 'ALG', 'INNER_LAYER'], page.items.map(serverRow)));
        pageHint(invocation.output, page.next_cursor);
      }
      return EXIT.ok;
    },
  },
];
