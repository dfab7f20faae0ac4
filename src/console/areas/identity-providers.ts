import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { ManagementError, parseOrThrow, PreconditionFailed, type FieldError } from '../../management/errors.js';
import type { ManagementServices } from '../../management/index.js';
import { DEFAULT_LIMIT } from '../../management/pagination.js';
import type { IdentityProviderResponse } from '../../management/identity-providers/presenter.js';
import { createIdentityProviderBody, DEFAULT_SCOPES, patchIdentityProviderBody, SYNC_MODES } from '../../management/identity-providers/schema.js';
import { checked, doneMessage, pageLinks, ERROR_STATUS, errorsByField, type FormErrors, hasErrors, listField, NO_ERRORS, queryValue, STALE_FORM_MESSAGE, versionOf } from '../forms.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §10 and §11, the identity-providers area: a paged list, a create form, an edit form
 * carrying the version it was read at, and deletion behind a confirmation page, through the same
 * service, schemas (createIdentityProviderBody, patchIdentityProviderBody) and audit as the admin
 * API. The upstream client secret is write-only: never put back on a page; the service seals it.
 */

const FIELDS = [
  'name',
  'issuer',
  'client_id',
  'client_secret',
  'remove_client_secret',
  'scopes',
  'email_domains',
  'create_users',
  'link_by_verified_email',
  'claim_username',
  'claim_email',
  'claim_name',
  'role_mappings',
  'sync',
  'trust_upstream_mfa',
  'enabled',
] as const;
type Field = (typeof FIELDS)[number];

/** What the person typed, kept as typed, except the secret, which is never sent back. */
type FormValues = Record<Field, string>;

const EMPTY_FORM: FormValues = {
  name: '',
  issuer: '',
  client_id: '',
  client_secret: '',
  remove_client_secret: '',
  scopes: DEFAULT_SCOPES.join(' '),
  email_domains: '',
  create_users: '',
  link_by_verified_email: '',
  claim_username: '',
  claim_email: '',
  claim_name: '',
  role_mappings: '',
  sync: 'on_create',
  trust_upstream_mfa: '',
  enabled: 'on',
};

/** Fixed messages after a redirect, so the query string cannot put words on the page. */
const DONE_MESSAGES = {
  created: 'Identity provider created. Register its redirect URI at the upstream; its button is on the login page while it is enabled.',
  saved: 'Changes saved.',
  deleted: 'Identity provider deleted. People linked through it keep their accounts; their links to it are gone.',
} as const;

/** The claim mappings' own fields on the form. */
const CLAIM_FIELDS = { username: 'claim_username', email: 'claim_email', name: 'claim_name' } as const;

function valuesOf(form: Record<string, string>): FormValues {
  const values = { ...EMPTY_FORM };
  for (const field of FIELDS) values[field] = form[field] ?? '';
  return values;
}

function valuesFrom(provider: IdentityProviderResponse): FormValues {
  return {
    name: provider.name,
    issuer: provider.issuer,
    client_id: provider.client_id,
    client_secret: '',
    remove_client_secret: '',
    scopes: provider.scopes.join(' '),
    email_domains: provider.email_domains.join('\n'),
    create_users: provider.create_users ? 'on' : '',
    link_by_verified_email: provider.link_by_verified_email ? 'on' : '',
    claim_username: provider.claim_mappings.username ?? '',
    claim_email: provider.claim_mappings.email ?? '',
    claim_name: provider.claim_mappings.name ?? '',
    role_mappings: provider.role_mappings.map((mapping) => `${mapping.claim} ${mapping.value} ${mapping.role}`).join('\n'),
    sync: provider.sync,
    trust_upstream_mfa: provider.trust_upstream_mfa ? 'on' : '',
    enabled: provider.enabled ? 'on' : '',
  };
}

/**
 * One role mapping a line: the claim, the value and the role, separated by spaces; the claim
 * is the first word and the role the last, so a value may hold spaces.
 */
function roleMappingsOf(text: string, errors: FieldError[]): { claim: string; value: string; role: string }[] {
  const mappings: { claim: string; value: string; role: string }[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const words = line.trim().split(/\s+/).filter((word) => word !== '');
    if (words.length === 0) return;
    if (words.length < 3) {
      errors.push({ pointer: '#/role_mappings', detail: `line ${index + 1}: write the claim, the value and the role, separated by spaces` });
      return;
    }
    mappings.push({ claim: words[0]!, value: words.slice(1, -1).join(' '), role: words.at(-1)! });
  });
  return mappings;
}

/**
 * The admin API's body from the form. The secret: on create, empty means none (a public client,
 * PKCE only); on edit, empty leaves the stored one alone (left out of the patch) and the
 * "remove" box sends null.
 */
function bodyFromForm(values: FormValues, mode: 'create' | 'edit'): { body: Record<string, unknown>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const claimMappings: Record<string, string> = {};
  for (const [claim, field] of Object.entries(CLAIM_FIELDS)) {
    if (values[field].trim() !== '') claimMappings[claim] = values[field].trim();
  }
  const body: Record<string, unknown> = {
    name: values.name,
    issuer: values.issuer.trim(),
    client_id: values.client_id,
    scopes: listField(values.scopes),
    email_domains: listField(values.email_domains),
    create_users: checked(values.create_users),
    link_by_verified_email: checked(values.link_by_verified_email),
    claim_mappings: claimMappings,
    role_mappings: roleMappingsOf(values.role_mappings, errors),
    sync: values.sync,
    trust_upstream_mfa: checked(values.trust_upstream_mfa),
    enabled: checked(values.enabled),
  };
  const remove = mode === 'edit' && checked(values.remove_client_secret);
  if (remove && values.client_secret !== '') errors.push({ pointer: '#/remove_client_secret', detail: 'either type a new secret or remove it, not both' });
  if (remove) body['client_secret'] = null;
  else if (values.client_secret !== '') body['client_secret'] = values.client_secret;
  else if (mode === 'create') body['client_secret'] = null;
  return { body, errors };
}

/**
 * The schema's pointers onto the form's fields: a claim mapping has its own field, and a role
 * mapping's error names its line (the body holds objects there, not strings errorsByField could quote).
 */
function onForm(errors: readonly FieldError[]): FieldError[] {
  return errors.map((error) => {
    const [name, index, part] = error.pointer.replace(/^#\/?/, '').split('/');
    if (name === 'claim_mappings' && index !== undefined && Object.hasOwn(CLAIM_FIELDS, index)) {
      return { pointer: `#/${CLAIM_FIELDS[index as keyof typeof CLAIM_FIELDS]}`, detail: error.detail };
    }
    if (name === 'role_mappings' && index !== undefined && /^\d+$/.test(index)) {
      return { pointer: '#/role_mappings', detail: `mapping ${Number(index) + 1}${part === undefined ? '' : ` (${part})`}: ${error.detail}` };
    }
    return error;
  });
}

function errorsOf(error: ManagementError): FieldError[] {
  return [...(error.errors ?? [{ pointer: '#', detail: error.message }])];
}

export function identityProvidersArea(management: Pick<ManagementServices, 'identityProviders'>): ConsoleAreaModule {
  const { identityProviders } = management;

  return {
    id: 'identity-providers',
    register(router: Router, kit: ConsoleKit) {
      // Matched below ISSUER's path, which a proxy in front strips (links use listUrl).
      const path = `${CONSOLE_PATH}/identity-providers`;
      const listUrl = `${kit.consoleUrl}/identity-providers`;
      const providerUrl = (id: string) => `${listUrl}/${encodeURIComponent(id)}`;
      const crumbs = [{ title: 'Identity providers', href: listUrl }];

      function formErrors(errors: readonly FieldError[], body: Record<string, unknown>): FormErrors<Field> {
        return errorsByField(onForm(errors), FIELDS, body);
      }

      function renderNew(ctx: ParameterizedContext, values: FormValues, status = 200, errors: FormErrors<Field> = NO_ERRORS): void {
        kit.render(
          ctx,
          'console-identity-provider',
          {
            title: hasErrors(errors) ? 'Error: New identity provider' : 'New identity provider',
            heading: 'New identity provider',
            action: listUrl,
            submit: 'Create identity provider',
            crumbs,
            listUrl,
            values: { ...values, client_secret: '' },
            errors: errors.fields,
            general: errors.general,
            syncModes: SYNC_MODES,
          },
          status,
        );
      }

      function renderEdit(
        ctx: ParameterizedContext,
        provider: IdentityProviderResponse,
        options: { values?: FormValues; version?: string; status?: number; errors?: FormErrors<Field>; message?: string } = {},
      ): void {
        const errors = options.errors ?? NO_ERRORS;
        kit.render(
          ctx,
          'console-identity-provider',
          {
            title: hasErrors(errors) ? 'Error: Identity provider' : 'Identity provider',
            heading: `Identity provider ${provider.name}`,
            action: providerUrl(provider.id),
            submit: 'Save changes',
            crumbs,
            listUrl,
            provider,
            version: options.version ?? versionOf(provider),
            deleteUrl: `${providerUrl(provider.id)}/delete`,
            // Write-only: whatever was typed as a secret is not sent back.
            values: { ...(options.values ?? valuesFrom(provider)), client_secret: '' },
            errors: errors.fields,
            general: errors.general,
            message: options.message,
            syncModes: SYNC_MODES,
          },
          options.status,
        );
      }

      const notFound = (ctx: ParameterizedContext): void => kit.notFound(ctx, 'Identity provider');
      const load = (ctx: ParameterizedContext): Promise<IdentityProviderResponse | undefined> => kit.find(ctx, 'Identity provider', (id) => identityProviders.get(id));

      router.get(path, kit.requireArea('identity-providers'), async function listIdentityProviders(ctx) {
        const cursor = queryValue(ctx.query['cursor']);
        try {
          const page = await identityProviders.list({ limit: DEFAULT_LIMIT, cursor: cursor === '' ? undefined : cursor });
          kit.render(ctx, 'console-identity-providers', {
            title: 'Identity providers',
            items: page.items.map((provider) => ({ ...provider, href: providerUrl(provider.id) })),
            ...pageLinks(listUrl, cursor, page.next_cursor),
            newUrl: `${listUrl}/new`,
            message: doneMessage(DONE_MESSAGES, ctx.query['done']),
          });
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          kit.pageNotFound(ctx);
        }
      });

      router.get(`${path}/new`, kit.requireArea('identity-providers'), function newIdentityProvider(ctx) {
        renderNew(ctx, EMPTY_FORM);
      });

      router.post(path, kit.requireArea('identity-providers'), async function createIdentityProvider(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const values = valuesOf(form);
        const { body, errors } = bodyFromForm(values, 'create');
        try {
          const parsed = parseOrThrow(createIdentityProviderBody, body);
          if (errors.length === 0) {
            const created = await identityProviders.create(parsed, kit.audit(ctx));
            return kit.redirect(ctx, `${providerUrl(created.id)}?done=created`);
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          errors.push(...errorsOf(error));
          return renderNew(ctx, values, ERROR_STATUS[error.code], formErrors(errors, body));
        }
        // The form's own errors (a role mapping line without its three parts).
        renderNew(ctx, values, 400, formErrors(errors, body));
      });

      router.get(`${path}/:id`, kit.requireArea('identity-providers'), async function showIdentityProvider(ctx) {
        const provider = await load(ctx);
        if (provider === undefined) return;
        renderEdit(ctx, provider, { message: doneMessage(DONE_MESSAGES, ctx.query['done']) });
      });

      router.post(`${path}/:id`, kit.requireArea('identity-providers'), async function updateIdentityProvider(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const current = await load(ctx);
        if (current === undefined) return;
        const values = valuesOf(form);
        const { body, errors } = bodyFromForm(values, 'edit');
        // A form without the version it was read at cannot show it is current: refused as stale.
        const version = form['version'] ?? '';
        try {
          if (version === '') throw new PreconditionFailed('The form carries no version.');
          const parsed = parseOrThrow(patchIdentityProviderBody, body);
          if (errors.length === 0) {
            const updated = await identityProviders.update(current.id, parsed, kit.audit(ctx), version);
            return kit.redirect(ctx, `${providerUrl(updated.id)}?done=saved`);
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          if (error.code === 'precondition_failed') {
            // Nothing was saved: the current values, at their version, and the conflict message.
            const fresh = await load(ctx);
            if (fresh === undefined) return;
            return renderEdit(ctx, fresh, { status: 409, errors: { fields: {}, general: [STALE_FORM_MESSAGE] } });
          }
          if (error.code === 'not_found') return notFound(ctx);
          errors.push(...errorsOf(error));
          return renderEdit(ctx, current, { values, version, status: ERROR_STATUS[error.code], errors: formErrors(errors, body) });
        }
        renderEdit(ctx, current, { values, version, status: 400, errors: formErrors(errors, body) });
      });

      router.get(`${path}/:id/delete`, kit.requireArea('identity-providers'), async function confirmDeleteIdentityProvider(ctx) {
        const provider = await load(ctx);
        if (provider === undefined) return;
        kit.render(ctx, 'console-identity-provider-delete', {
          title: 'Delete identity provider',
          provider,
          crumbs: [...crumbs, { title: provider.name, href: providerUrl(provider.id) }],
          action: `${providerUrl(provider.id)}/delete`,
          cancelHref: providerUrl(provider.id),
        });
      });

      router.post(`${path}/:id/delete`, kit.requireArea('identity-providers'), async function deleteIdentityProvider(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const provider = await load(ctx);
        if (provider === undefined) return;
        try {
          await identityProviders.delete(provider.id, kit.audit(ctx));
        } catch (error) {
          if (error instanceof ManagementError && error.code === 'not_found') return notFound(ctx);
          throw error;
        }
        kit.redirect(ctx, `${listUrl}?done=deleted`);
      });
    },
  };
}
