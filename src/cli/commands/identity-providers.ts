import { cliClientSecret } from '../../config.js';
import { listQuery } from '../../management/pagination.js';
import { parseOrThrow } from '../../management/errors.js';
import type { IdentityProviderResponse } from '../../management/identity-providers/presenter.js';
import { createIdentityProviderBody, patchIdentityProviderBody, SYNC_MODES } from '../../management/identity-providers/schema.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, record, table, UsageError, type Command, type Invocation, type OptionSpec } from '../command.js';
import { withServices } from '../context.js';
import { given, splitScopes } from '../input.js';
import { readClientSecret } from '../password.js';

const PROVIDER_ID = { min: 1, max: 1 };
const SECRET_SOURCE = 'GATEHOUSE_CLIENT_SECRET or stdin';

function providerRow(provider: IdentityProviderResponse): string[] {
  return [provider.id, provider.name, provider.issuer, provider.email_domains.join(','), provider.enabled ? 'yes' : 'no', provider.client_secret_set ? 'yes' : 'no'];
}

function show(invocation: Invocation, provider: IdentityProviderResponse): void {
  if (invocation.output.json) printJson(invocation.output, provider);
  else invocation.output.out(record(provider));
}

/** `true`/`false` as booleans; anything else as given, for the schema to explain what is wrong. */
function booleanOrText(value: string | undefined): boolean | string | undefined {
  if (value === undefined) return undefined;
  return value === 'true' ? true : value === 'false' ? false : value;
}

/**
 * `ROLE=CLAIM=VALUE`: the person gets ROLE when the upstream claim CLAIM is (or contains) VALUE.
 * A role has no `=`, and a claim name rarely does; the value keeps any further ones.
 */
function roleMappingOf(text: string): { role: string; claim: string; value: string } {
  const [role, claim, ...value] = text.split('=');
  if (role === undefined || claim === undefined || value.length === 0) throw new UsageError(`--role-mapping ${text}: expected ROLE=CLAIM=VALUE, e.g. billing:admin=groups=billing-admins`);
  return { role, claim, value: value.join('=') };
}

const FIELD_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  name: { type: 'string', value: 'NAME', field: 'name', help: 'shown on the login page' },
  issuer: { type: 'string', value: 'URL', field: 'issuer', help: 'the upstream’s issuer identifier (https; its discovery document is read from it)' },
  'client-id': { type: 'string', value: 'ID', field: 'client_id', help: 'Gatehouse’s client id at the upstream' },
  scope: { type: 'string', multiple: true, value: 'SCOPE', field: 'scopes', help: 'a scope to ask the upstream for (repeatable; default openid email profile; openid is required)' },
  'email-domain': { type: 'string', multiple: true, value: 'DOMAIN', field: 'email_domains', help: 'a login_hint in this domain goes straight to this provider (repeatable)' },
  'username-claim': { type: 'string', value: 'CLAIM', field: 'claim_mappings', help: 'the upstream claim for the username (default preferred_username)' },
  'email-claim': { type: 'string', value: 'CLAIM', field: 'claim_mappings', help: 'the upstream claim for the email (default email)' },
  'name-claim': { type: 'string', value: 'CLAIM', field: 'claim_mappings', help: 'the upstream claim for the name (default name)' },
  'role-mapping': { type: 'string', multiple: true, value: 'ROLE=CLAIM=VALUE', field: 'role_mappings', help: 'give ROLE to people whose upstream CLAIM is or contains VALUE (repeatable)' },
  sync: { type: 'string', value: 'WHEN', field: 'sync', help: `when the profile and mapped roles are copied: ${SYNC_MODES.join(' or ')} (default on_create)` },
};

/** The body fields the flags give; `booleans` reads the switches. */
function fieldsOf(invocation: Invocation, booleans: (name: string) => boolean | string | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  given(body, 'name', invocation.string('name'));
  given(body, 'issuer', invocation.string('issuer'));
  given(body, 'client_id', invocation.string('client-id'));
  given(body, 'scopes', splitScopes(invocation.strings('scope')), (list) => list.length > 0);
  given(body, 'email_domains', splitScopes(invocation.strings('email-domain')), (list) => list.length > 0);
  const claims: Record<string, string> = {};
  given(claims, 'username', invocation.string('username-claim'));
  given(claims, 'email', invocation.string('email-claim'));
  given(claims, 'name', invocation.string('name-claim'));
  given(body, 'claim_mappings', claims, (value) => Object.keys(value).length > 0);
  given(body, 'role_mappings', invocation.strings('role-mapping').map(roleMappingOf), (list) => list.length > 0);
  given(body, 'sync', invocation.string('sync'));
  given(body, 'create_users', booleans('create-users'));
  given(body, 'link_by_verified_email', booleans('link-by-verified-email'));
  given(body, 'trust_upstream_mfa', booleans('trust-upstream-mfa'));
  return body;
}

export const identityProviderCommands: readonly Command[] = [
  {
    path: ['identity-providers', 'create'],
    usage: '--name NAME --issuer URL --client-id ID [options]',
    fieldSources: { client_secret: SECRET_SOURCE },
    summary: 'add an upstream OpenID provider people sign in with (secret from GATEHOUSE_CLIENT_SECRET or stdin)',
    description: [
      'Adds an identity provider, validated exactly as POST /admin/v1/identity-providers validates it; its client secret is sealed with MASTER_KEY and never shown again.',
      'The client secret is never a flag (flags end up in shell history and in ps): it is read from GATEHOUSE_CLIENT_SECRET, else from stdin (one line), else prompted for without echo. --public-client registers none (PKCE only).',
      'Register the printed redirect_uri at the upstream.',
    ],
    options: {
      ...FIELD_OPTIONS,
      'public-client': { type: 'boolean', help: 'Gatehouse has no client secret at the upstream (PKCE only)' },
      'create-users': { type: 'boolean', field: 'create_users', help: 'create a person at a first sign-in that matches nobody' },
      'link-by-verified-email': { type: 'boolean', field: 'link_by_verified_email', help: 'link a first sign-in to the person with the same verified email' },
      'trust-upstream-mfa': { type: 'boolean', field: 'trust_upstream_mfa', help: 'an upstream amr proving a second factor satisfies Gatehouse’s' },
      disabled: { type: 'boolean', field: 'enabled', help: 'create it disabled (not offered at sign-in)' },
    },
    examples: [
      'GATEHOUSE_CLIENT_SECRET="$(pass show sso/gatehouse)" gatehouse identity-providers create --name "Example SSO" --issuer https://login.example.com --client-id gatehouse --email-domain example.com --link-by-verified-email',
      'gatehouse identity-providers create --name Partner --issuer https://sso.partner.example --client-id gh --role-mapping staff=groups=gatehouse-staff < secret.txt',
    ],
    async run(invocation) {
      const body = fieldsOf(invocation, (name) => (invocation.flag(name) ? true : undefined));
      if (invocation.flag('disabled')) body['enabled'] = false;
      // Checked before a secret is asked for: a typo in a flag should not cost a paste.
      parseOrThrow(createIdentityProviderBody, body, 'input');
      if (!invocation.flag('public-client')) body['client_secret'] = await readClientSecret(cliClientSecret());
      const definition = parseOrThrow(createIdentityProviderBody, body, 'input');
      const provider = await withServices(invocation.output, ({ services, audit }) => services.identityProviders.create(definition, audit));
      show(invocation, provider);
      return EXIT.ok;
    },
  },
  {
    path: ['identity-providers', 'list'],
    summary: 'list identity providers',
    description: ['Lists identity providers in the order they were created, as GET /admin/v1/identity-providers does.'],
    options: { ...PAGE_OPTIONS },
    examples: ['gatehouse identity-providers list', 'gatehouse identity-providers list --json'],
    async run(invocation) {
      const query = parseOrThrow(listQuery, pageQueryOf(invocation), 'input');
      const page = await withServices(invocation.output, ({ services }) => services.identityProviders.list(query));
      if (invocation.output.json) printJson(invocation.output, page);
      else {
        invocation.output.out(table(['ID', 'NAME', 'ISSUER', 'EMAIL_DOMAINS', 'ENABLED', 'SECRET'], page.items.map(providerRow)));
        pageHint(invocation.output, page.next_cursor);
      }
      return EXIT.ok;
    },
  },
  {
    path: ['identity-providers', 'show'],
    args: 'ID',
    positionals: PROVIDER_ID,
    summary: 'show one identity provider',
    description: ['Shows an identity provider, as GET /admin/v1/identity-providers/{id} does: never its client secret.'],
    examples: ['gatehouse identity-providers show 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      show(invocation, await withServices(invocation.output, ({ services }) => services.identityProviders.get(id)));
      return EXIT.ok;
    },
  },
  {
    path: ['identity-providers', 'update'],
    args: 'ID',
    positionals: PROVIDER_ID,
    fieldSources: { client_secret: SECRET_SOURCE },
    summary: 'change an identity provider',
    description: [
      'Given flags replace the stored fields, as PATCH /admin/v1/identity-providers/{id} does; the switches take true or false. --no-role-mappings and --no-email-domains empty those lists.',
      '--new-client-secret reads a new secret (GATEHOUSE_CLIENT_SECRET, else stdin, else a prompt) and seals it; --remove-client-secret makes it a public client.',
    ],
    options: {
      ...FIELD_OPTIONS,
      'no-email-domains': { type: 'boolean', help: 'remove every email domain' },
      'no-role-mappings': { type: 'boolean', help: 'remove every role mapping' },
      'new-client-secret': { type: 'boolean', help: 'replace the client secret (read from GATEHOUSE_CLIENT_SECRET or stdin)' },
      'remove-client-secret': { type: 'boolean', help: 'remove the client secret (PKCE only)' },
      'create-users': { type: 'string', value: 'true|false', field: 'create_users', help: 'create a person at a first sign-in that matches nobody' },
      'link-by-verified-email': { type: 'string', value: 'true|false', field: 'link_by_verified_email', help: 'link a first sign-in to the person with the same verified email' },
      'trust-upstream-mfa': { type: 'string', value: 'true|false', field: 'trust_upstream_mfa', help: 'an upstream amr proving a second factor satisfies Gatehouse’s' },
      enabled: { type: 'string', value: 'true|false', field: 'enabled', help: 'offered at sign-in' },
    },
    examples: [
      'gatehouse identity-providers update 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60 --enabled false',
      'GATEHOUSE_CLIENT_SECRET="$(pass show sso/gatehouse)" gatehouse identity-providers update 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60 --new-client-secret',
    ],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      const body = fieldsOf(invocation, (name) => booleanOrText(invocation.string(name)));
      given(body, 'enabled', booleanOrText(invocation.string('enabled')));
      if (invocation.flag('no-email-domains')) body['email_domains'] = [];
      if (invocation.flag('no-role-mappings')) body['role_mappings'] = [];
      if (invocation.flag('new-client-secret') && invocation.flag('remove-client-secret')) throw new UsageError('--new-client-secret and --remove-client-secret exclude each other');
      if (invocation.flag('remove-client-secret')) body['client_secret'] = null;
      parseOrThrow(patchIdentityProviderBody, body, 'input');
      if (invocation.flag('new-client-secret')) body['client_secret'] = await readClientSecret(cliClientSecret());
      const patch = parseOrThrow(patchIdentityProviderBody, body, 'input');
      show(invocation, await withServices(invocation.output, ({ services, audit }) => services.identityProviders.update(id, patch, audit)));
      return EXIT.ok;
    },
  },
  {
    path: ['identity-providers', 'delete'],
    args: 'ID',
    positionals: PROVIDER_ID,
    summary: 'delete an identity provider',
    description: ['Deletes the provider: people linked through it keep their accounts, their identities at it are unlinked.'],
    examples: ['gatehouse identity-providers delete 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      await withServices(invocation.output, ({ services, audit }) => services.identityProviders.delete(id, audit));
      if (invocation.output.json) printJson(invocation.output, { id, deleted: true });
      else invocation.output.out(`deleted identity provider ${id}\n`);
      return EXIT.ok;
    },
  },
];
