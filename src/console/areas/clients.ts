import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { ManagementError, parseOrThrow, PreconditionFailed, type FieldError } from '../../management/errors.js';
import type { ManagementServices } from '../../management/index.js';
import { DEFAULT_LIMIT, MAX_LIMIT } from '../../management/pagination.js';
import type { ClientResponse } from '../../management/clients/presenter.js';
import { AUTH_METHODS, createClientBody, DEVICE_CODE_GRANT, GRANT_TYPES, patchClientBody, SECRET_AUTH_METHODS, TLS_SUBJECT_FIELDS, TOKEN_EXCHANGE_GRANT } from '../../management/clients/schema.js';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { checked, doneMessage, ERROR_STATUS, errorsByField, type FormErrors, hasErrors, listField, NO_ERRORS, queryValue, STALE_FORM_MESSAGE, versionOf } from '../forms.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §11, the clients area: a paged list searchable by name prefix or exact client_id, a
 * create form, a detail page with an edit form, secret rotation and deletion behind
 * confirmation pages. Forms are parsed into the admin API's body shape and judged by its schemas
 * (createClientBody, patchClientBody); every change goes through the client service, audited
 * with the person as the actor. A secret is shown once, in the answer to the POST that issued it:
 * never in a URL or a cookie, and the page is no-store, so reloading or going back cannot show it.
 */

const FIELDS = [
  'client_name',
  'grant_types',
  'redirect_uris',
  'post_logout_redirect_uris',
  'token_endpoint_auth_method',
  'allowed_resources',
  'scope',
  'require_mfa',
  'first_party',
  'jwks',
  'jwks_uri',
  ...TLS_SUBJECT_FIELDS,
  'tls_client_certificate_bound_access_tokens',
  'dpop_bound_access_tokens',
  'require_pushed_authorization_requests',
  'token_exchange',
] as const;
type Field = (typeof FIELDS)[number];

const BOOLEAN_FIELDS = ['require_mfa', 'first_party', 'tls_client_certificate_bound_access_tokens', 'dpop_bound_access_tokens', 'require_pushed_authorization_requests'] as const;
/** Fields that are absent when left empty (null in a patch removes them). */
const OPTIONAL_TEXT_FIELDS = ['jwks_uri', ...TLS_SUBJECT_FIELDS] as const;

/** The client service's client_id shape (randomIdentifier); anything else names no client. */
const CLIENT_ID = /^[\w-]{1,200}$/;

/** Sent as If-Match when a form lacks its version: matches no ETag, so the change is refused as stale instead of unchecked. */
const NO_VERSION = '"none"';

/** What a redirect after a change says; only these, so the query string cannot put words on the page. */
const DONE_MESSAGES = {
  created: 'Client created.',
  updated: 'Client saved.',
  deleted: 'Client deleted: it can no longer authenticate, and its grants and refresh tokens are revoked.',
} as const;

const GRANT_LABELS: Record<(typeof GRANT_TYPES)[number], string> = {
  authorization_code: 'Authorization code (people sign in)',
  refresh_token: 'Refresh token',
  client_credentials: 'Client credentials (service to service)',
  [TOKEN_EXCHANGE_GRANT]: 'Token exchange (RFC 8693)',
  [DEVICE_CODE_GRANT]: 'Device code (command-line tools and TVs, RFC 8628)',
};

/** What the person typed, kept as typed so a refused form comes back as they left it. */
interface FormValues {
  readonly text: Record<Exclude<Field, 'grant_types' | 'allowed_resources' | (typeof BOOLEAN_FIELDS)[number]>, string>;
  readonly grantTypes: string[];
  readonly allowedResources: string[];
  readonly flags: Record<(typeof BOOLEAN_FIELDS)[number], boolean>;
}

const EMPTY_FORM: FormValues = {
  text: {
    client_name: '',
    redirect_uris: '',
    post_logout_redirect_uris: '',
    token_endpoint_auth_method: 'client_secret_basic',
    scope: '',
    jwks: '',
    jwks_uri: '',
    tls_client_auth_subject_dn: '',
    tls_client_auth_san_dns: '',
    tls_client_auth_san_uri: '',
    tls_client_auth_san_ip: '',
    tls_client_auth_san_email: '',
    token_exchange: '',
  },
  grantTypes: ['client_credentials'],
  allowedResources: [],
  flags: {
    require_mfa: false,
    first_party: false,
    tls_client_certificate_bound_access_tokens: false,
    dpop_bound_access_tokens: false,
    require_pushed_authorization_requests: false,
  },
};

/** Checkbox names: one field per choice, as a form may not send a name twice (src/http/form.ts). */
const grantField = (grant: string) => `grant_type:${grant}`;
const resourceField = (identifier: string) => `resource:${identifier}`;

function valuesOfForm(form: Record<string, string>, known: readonly string[]): FormValues {
  const text = { ...EMPTY_FORM.text };
  for (const field of Object.keys(text) as (keyof FormValues['text'])[]) text[field] = form[field] ?? '';
  const picked = known.filter((identifier) => checked(form[resourceField(identifier)]));
  const typed = listField(form['allowed_resources_other']);
  return {
    text,
    grantTypes: GRANT_TYPES.filter((grant) => checked(form[grantField(grant)])),
    // Ticked ones in the list's order, then the typed ones not ticked already.
    allowedResources: [...picked, ...typed.filter((identifier) => !picked.includes(identifier))],
    flags: Object.fromEntries(BOOLEAN_FIELDS.map((field) => [field, checked(form[field])])) as FormValues['flags'],
  };
}

/** The edit form of a client as the service presents it. */
function valuesOfClient(client: ClientResponse): FormValues {
  return {
    text: {
      client_name: client.client_name,
      redirect_uris: client.redirect_uris.join('\n'),
      post_logout_redirect_uris: client.post_logout_redirect_uris.join('\n'),
      token_endpoint_auth_method: client.token_endpoint_auth_method,
      scope: client.scope ?? '',
      jwks: client.jwks === undefined ? '' : JSON.stringify(client.jwks, null, 2),
      jwks_uri: client.jwks_uri ?? '',
      tls_client_auth_subject_dn: client.tls_client_auth_subject_dn ?? '',
      tls_client_auth_san_dns: client.tls_client_auth_san_dns ?? '',
      tls_client_auth_san_uri: client.tls_client_auth_san_uri ?? '',
      tls_client_auth_san_ip: client.tls_client_auth_san_ip ?? '',
      tls_client_auth_san_email: client.tls_client_auth_san_email ?? '',
      token_exchange: (client.token_exchange?.subject_audiences ?? []).join('\n'),
    },
    grantTypes: [...client.grant_types],
    allowedResources: [...client.allowed_resources],
    flags: {
      require_mfa: client.require_mfa,
      first_party: client.first_party,
      tls_client_certificate_bound_access_tokens: client.tls_client_certificate_bound_access_tokens,
      dpop_bound_access_tokens: client.dpop_bound_access_tokens,
      require_pushed_authorization_requests: client.require_pushed_authorization_requests,
    },
  };
}

/**
 * The admin API's body from the form: lists one per line, checkboxes present or not, the JWKS
 * pasted as JSON, an empty optional field absent (`empty`: undefined on create, null in a patch,
 * which removes it). What the form cannot express as the schema's type is a field error here;
 * everything else is left for the schema to judge.
 */
function bodyFromForm(values: FormValues, empty: undefined | null): { body: Record<string, unknown>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const { text } = values;
  const body: Record<string, unknown> = {
    client_name: text.client_name,
    grant_types: values.grantTypes,
    redirect_uris: listField(text.redirect_uris),
    post_logout_redirect_uris: listField(text.post_logout_redirect_uris),
    token_endpoint_auth_method: text.token_endpoint_auth_method,
    allowed_resources: values.allowedResources,
    ...values.flags,
  };
  const scope = listField(text.scope).join(' ');
  body['scope'] = scope === '' ? empty : scope;
  for (const field of OPTIONAL_TEXT_FIELDS) body[field] = text[field].trim() === '' ? empty : text[field].trim();
  const audiences = listField(text.token_exchange);
  body['token_exchange'] = audiences.length === 0 ? empty : { subject_audiences: audiences };
  const jwks = text.jwks.trim();
  if (jwks === '') {
    body['jwks'] = empty;
  } else {
    try {
      body['jwks'] = JSON.parse(jwks) as unknown;
    } catch {
      errors.push({ pointer: '#/jwks', detail: 'must be a JWK Set as JSON, e.g. {"keys":[{"kty":"EC", …}]}' });
    }
  }
  return { body: Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)), errors };
}

/** A patch of only what differs from the client as it is, so the audit names the fields changed. */
function changedFields(body: Record<string, unknown>, current: ClientResponse): Record<string, unknown> {
  const now = current as unknown as Record<string, unknown>;
  return Object.fromEntries(Object.entries(body).filter(([key, value]) => JSON.stringify(value ?? null) !== JSON.stringify(now[key] ?? null)));
}

function errorsOf(error: ManagementError): FieldError[] {
  return [...(error.errors ?? [{ pointer: '#', detail: error.message }])];
}

export function clientsArea(management: Pick<ManagementServices, 'clients' | 'resourceServers'>): ConsoleAreaModule {
  const { clients, resourceServers } = management;

  return {
    id: 'clients',
    register(router: Router, kit: ConsoleKit) {
      // Matched below ISSUER's path, which a proxy in front strips (links use listUrl).
      const path = `${CONSOLE_PATH}/clients`;
      const listUrl = `${kit.consoleUrl}/clients`;
      const clientUrl = (clientId: string) => `${listUrl}/${encodeURIComponent(clientId)}`;

      /** The resource servers offered as checkboxes (the first MAX_LIMIT; others are typed). */
      async function knownResources(): Promise<{ identifier: string; name: string }[]> {
        return (await resourceServers.list({ limit: MAX_LIMIT })).items.map((server) => ({ identifier: server.identifier, name: server.name }));
      }

      async function formData(values: FormValues, errors: FormErrors<Field>) {
        const known = await knownResources();
        const knownIds = new Set(known.map((server) => server.identifier));
        return {
          values: values.text,
          flags: values.flags,
          grants: GRANT_TYPES.map((grant, index) => ({ id: `grant_types-${index}`, name: grantField(grant), value: grant, label: GRANT_LABELS[grant], checked: values.grantTypes.includes(grant) })),
          resources: known.map((server, index) => ({ id: `allowed_resources-${index}`, field: resourceField(server.identifier), ...server, checked: values.allowedResources.includes(server.identifier) })),
          otherResources: values.allowedResources.filter((identifier) => !knownIds.has(identifier)).join('\n'),
          authMethods: AUTH_METHODS,
          errors: errors.fields,
          general: errors.general,
        };
      }

      async function renderNew(ctx: ParameterizedContext, values: FormValues, status = 200, errors: FormErrors<Field> = NO_ERRORS): Promise<void> {
        kit.render(
          ctx,
          'console-client-new',
          { title: hasErrors(errors) ? 'Error: New client' : 'New client', action: listUrl, listUrl, ...(await formData(values, errors)) },
          status,
        );
      }

      async function renderDetail(ctx: ParameterizedContext, client: ClientResponse, options: { values?: FormValues; errors?: FormErrors<Field>; status?: number; message?: string } = {}): Promise<void> {
        const errors = options.errors ?? NO_ERRORS;
        const url = clientUrl(client.client_id);
        kit.render(
          ctx,
          'console-client',
          {
            title: hasErrors(errors) ? `Error: ${client.client_name}` : client.client_name,
           
            client,
            hasSecret: SECRET_AUTH_METHODS.includes(client.token_endpoint_auth_method),
            action: url,
            version: versionOf(client),
            rotateUrl: `${url}/rotate`,
            deleteUrl: `${url}/delete`,
            listUrl,
            message: options.message,
            ...(await formData(options.values ?? valuesOfClient(client), errors)),
          },
          options.status,
        );
      }

      function renderSecret(ctx: ParameterizedContext, client: { client_id: string; client_name: string }, secret: string, reason: 'created' | 'rotated' | 'issued'): void {
        kit.render(ctx, 'console-client-secret', { title: 'Client secret', client, secret, reason, clientUrl: clientUrl(client.client_id), listUrl });
      }

      function notFound(ctx: ParameterizedContext): void {
        kit.render(ctx, 'error', { title: 'Client not found', message: 'No client with that client_id. It may have been deleted.', requestId: ctx.state.requestId }, 404);
      }

      /** The client named by the path, or undefined after answering 404. */
      async function clientOf(ctx: ParameterizedContext, clientId = ''): Promise<ClientResponse | undefined> {
        const client = CLIENT_ID.test(clientId) ? await clients.get(clientId).catch((error: unknown) => {
          if (error instanceof ManagementError && error.code === 'not_found') return undefined;
          throw error;
        }) : undefined;
        if (client === undefined) notFound(ctx);
        return client;
      }

      router.get(path, kit.requireArea('clients'), async function listClients(ctx) {
        const q = (queryValue(ctx.query['q']) ?? '').trim();
        const cursor = queryValue(ctx.query['cursor']);
        const done = queryValue(ctx.query['done']);
        const page = await clients.list({ limit: DEFAULT_LIMIT, cursor: cursor === '' ? undefined : cursor, client_name: q === '' ? undefined : q }).catch((error: unknown) => {
          if (error instanceof ManagementError) return undefined;
          throw error;
        });
        if (page === undefined) {
          kit.pageNotFound(ctx);
          return;
        }
        // An exact client_id typed into the search box, shown above the name matches (first page only).
        const exact =
          q !== '' && cursor === undefined && CLIENT_ID.test(q) && !page.items.some((client) => client.client_id === q)
            ? await clients.get(q).catch((error: unknown) => {
                if (error instanceof ManagementError) return undefined;
                throw error;
              })
            : undefined;
        const query = (extra: Record<string, string>) => `${listUrl}?${new URLSearchParams({ ...(q === '' ? {} : { q }), ...extra }).toString()}`;
        const items = [...(exact === undefined ? [] : [exact]), ...page.items].map((client) => ({ ...client, href: clientUrl(client.client_id) }));
        kit.render(ctx, 'console-clients', {
          title: q === '' ? 'Clients' : `Clients matching “${q}”`,
          items,
          q,
          searchAction: listUrl,
          newUrl: `${listUrl}/new`,
          next: page.next_cursor === null ? undefined : query({ cursor: page.next_cursor }),
          firstUrl: cursor === undefined ? undefined : q === '' ? listUrl : query({}),
          clearUrl: q === '' ? undefined : listUrl,
          message: doneMessage(DONE_MESSAGES, done),
        });
      });

      router.get(`${path}/new`, kit.requireArea('clients'), async function newClient(ctx) {
        await renderNew(ctx, EMPTY_FORM);
      });

      router.post(path, kit.requireArea('clients'), async function createClient(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const values = valuesOfForm(form, (await knownResources()).map((server) => server.identifier));
        const { body, errors } = bodyFromForm(values, undefined);
        let status = 400;
        try {
          const parsed = parseOrThrow(createClientBody, body);
          if (errors.length === 0) {
            const created = await clients.create(parsed, kit.audit(ctx));
            if (created.client_secret !== undefined) return renderSecret(ctx, created, created.client_secret, 'created');
            kit.redirect(ctx, `${clientUrl(created.client_id)}?done=created`);
            return;
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          errors.push(...errorsOf(error));
          status = ERROR_STATUS[error.code];
        }
        await renderNew(ctx, values, status, errorsByField(errors, FIELDS, body));
      });

      router.get(`${path}/:clientId`, kit.requireArea('clients'), async function showClient(ctx) {
        const client = await clientOf(ctx, ctx.params['clientId']);
        if (client === undefined) return;
        const done = queryValue(ctx.query['done']);
        await renderDetail(ctx, client, { message: doneMessage(DONE_MESSAGES, done) });
      });

      router.post(`${path}/:clientId`, kit.requireArea('clients'), async function updateClient(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const current = await clientOf(ctx, ctx.params['clientId']);
        if (current === undefined) return;
        const values = valuesOfForm(form, (await knownResources()).map((server) => server.identifier));
        const { body, errors } = bodyFromForm(values, null);
        let status = 400;
        try {
          const patch = parseOrThrow(patchClientBody, changedFields(body, current));
          if (errors.length === 0) {
            // The version the form was read at: a change by someone else since is refused (412), not overwritten.
            const updated = await clients.update(current.client_id, patch, kit.audit(ctx), form['version'] || NO_VERSION);
            // A switch to a secret-based method issued a secret: shown now, once.
            if (updated.client_secret !== undefined) return renderSecret(ctx, updated, updated.client_secret, 'issued');
            kit.redirect(ctx, `${clientUrl(current.client_id)}?done=updated`);
            return;
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          if (error instanceof PreconditionFailed) {
            // The current values, a fresh version, and what happened; what was typed is not kept over someone else's change.
            const fresh = await clients.get(current.client_id).catch(() => undefined);
            if (fresh === undefined) return notFound(ctx);
            return renderDetail(ctx, fresh, { errors: { fields: {}, general: [STALE_FORM_MESSAGE] }, status: ERROR_STATUS[error.code] });
          }
          errors.push(...errorsOf(error));
          status = ERROR_STATUS[error.code];
        }
        await renderDetail(ctx, current, { values, errors: errorsByField(errors, FIELDS, body), status });
      });

      router.get(`${path}/:clientId/rotate`, kit.requireArea('clients'), async function confirmRotate(ctx) {
        const client = await clientOf(ctx, ctx.params['clientId']);
        if (client === undefined) return;
        kit.render(ctx, 'console-client-confirm', { title: 'Rotate client secret', client, kind: 'rotate', action: `${clientUrl(client.client_id)}/rotate`, cancelHref: clientUrl(client.client_id), listUrl });
      });

      router.post(`${path}/:clientId/rotate`, kit.requireArea('clients'), async function rotateSecret(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const client = await clientOf(ctx, ctx.params['clientId']);
        if (client === undefined) return;
        try {
          const rotated = await clients.rotateSecret(client.client_id, kit.audit(ctx));
          renderSecret(ctx, client, rotated.client_secret, 'rotated');
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          kit.render(
            ctx,
            'console-client-confirm',
            { title: 'Rotate client secret', client, kind: 'rotate', action: `${clientUrl(client.client_id)}/rotate`, cancelHref: clientUrl(client.client_id), listUrl, error: error.message },
            ERROR_STATUS[error.code],
          );
        }
      });

      router.get(`${path}/:clientId/delete`, kit.requireArea('clients'), async function confirmDelete(ctx) {
        const client = await clientOf(ctx, ctx.params['clientId']);
        if (client === undefined) return;
        kit.render(ctx, 'console-client-confirm', { title: 'Delete client', client, kind: 'delete', action: `${clientUrl(client.client_id)}/delete`, cancelHref: clientUrl(client.client_id), listUrl });
      });

      router.post(`${path}/:clientId/delete`, kit.requireArea('clients'), async function deleteClient(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const client = await clientOf(ctx, ctx.params['clientId']);
        if (client === undefined) return;
        try {
          await clients.delete(client.client_id, kit.audit(ctx));
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          return kit.render(
            ctx,
            'console-client-confirm',
            { title: 'Delete client', client, kind: 'delete', action: `${clientUrl(client.client_id)}/delete`, cancelHref: clientUrl(client.client_id), listUrl, error: error.message },
            ERROR_STATUS[error.code],
          );
        }
        kit.redirect(ctx, `${listUrl}?done=deleted`);
      });
    },
  };
}
