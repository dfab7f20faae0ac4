import { createPublicKey } from 'node:crypto';
import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { SIGNING_ALGS, DEFAULT_SIGNING_ALG } from '../../crypto/signing-keys.js';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { ManagementError, parseOrThrow, type FieldError } from '../../management/errors.js';
import { checked, doneMessage, pageLinks, ERROR_STATUS, errorsByField, type FormErrors, hasErrors, listField, NO_ERRORS, queryValue, STALE_FORM_MESSAGE, versionOf } from '../forms.js';
import type { ManagementServices } from '../../management/index.js';
import { DEFAULT_LIMIT } from '../../management/pagination.js';
import type { ResourceServerResponse } from '../../management/resource-servers/presenter.js';
import { createResourceServerBody, patchResourceServerBody, TOKEN_FORMATS } from '../../management/resource-servers/schema.js';
import { PRIVATE_JWK_MEMBERS } from '../../tokens/jwe.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §11, the resource-servers area: a paged list, a create form, a page per resource server
 * with its edit form, and deletion behind a confirmation page. Forms are parsed into the admin
 * API's body shapes and judged by the same schemas (createResourceServerBody,
 * patchResourceServerBody), then go through the same service, audited with the person as actor.
 */

const FIELDS = ['identifier', 'name', 'scopes', 'access_token_ttl', 'signing_alg', 'inner_encryption_jwk', 'encrypt_whole_token', 'token_format', 'require_sender_constraint'] as const;
type Field = (typeof FIELDS)[number];

/** What the person typed, kept as typed so a refused form comes back as they left it. */
type FormValues = Record<Field, string>;

const EMPTY_FORM: FormValues = {
  identifier: '',
  name: '',
  scopes: '',
  access_token_ttl: '900',
  signing_alg: DEFAULT_SIGNING_ALG,
  inner_encryption_jwk: '',
  encrypt_whole_token: '',
  token_format: 'jwt',
  require_sender_constraint: '',
};

/** What a redirect after a change says; only these, so the query string cannot put words on the page. */
const DONE_MESSAGES = {
  created: 'Resource server created.',
  updated: 'Changes saved. New tokens follow them; tokens already issued keep what they were issued with.',
  deleted: 'Resource server deleted.',
} as const;


function valuesOf(form: Record<string, string>): FormValues {
  const values = { ...EMPTY_FORM };
  for (const field of FIELDS) values[field] = form[field] ?? '';
  return values;
}

/** The edit form's starting point: the resource server as the service shows it. */
function valuesFrom(server: ResourceServerResponse): FormValues {
  return {
    identifier: server.identifier,
    name: server.name,
    scopes: server.scopes.join(' '),
    access_token_ttl: String(server.access_token_ttl),
    signing_alg: server.signing_alg,
    inner_encryption_jwk: server.inner_encryption_jwk === null ? '' : JSON.stringify(server.inner_encryption_jwk, null, 2),
    encrypt_whole_token: server.encrypt_whole_token ? 'on' : '',
    token_format: server.token_format,
    require_sender_constraint: server.require_sender_constraint ? 'on' : '',
  };
}

const PRIVATE_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const PRIVATE_KEY_REFUSED = 'is a private key: paste the public key only (“-----BEGIN PUBLIC KEY-----” or a public JWK). It was not stored; keep the private key with the resource server.';

/**
 * The inner encryption key as a JWK: pasted as JSON, or as a PEM public key (converted here, so
 * the schema judges a JWK either way). A private key is refused and never stored, nor echoed.
 */
function innerKeyFromForm(text: string): { jwk: unknown; error?: string; forget?: true } {
  if (text === '') return { jwk: null };
  // Anywhere in the text (openssl output may start with "Bag Attributes"): createPublicKey would quietly derive the public half.
  if (PRIVATE_PEM.test(text)) return { jwk: undefined, forget: true, error: PRIVATE_KEY_REFUSED };
  if (text.includes('-----BEGIN ')) {
    try {
      return { jwk: createPublicKey(text).export({ format: 'jwk' }) };
    } catch {
      return { jwk: undefined, error: 'is not a PEM public key that can be read (“-----BEGIN PUBLIC KEY-----” … “-----END PUBLIC KEY-----”)' };
    }
  }
  let jwk: unknown;
  try {
    jwk = JSON.parse(text) as unknown;
  } catch {
    return { jwk: undefined, error: 'must be a JWK as JSON, e.g. {"kty":"EC", …}, or a PEM public key' };
  }
  // The schema refuses a private JWK too, but the form must not send it back to the browser.
  if (typeof jwk === 'object' && jwk !== null && PRIVATE_JWK_MEMBERS.some((member) => Object.hasOwn(jwk, member))) {
    return { jwk: undefined, forget: true, error: PRIVATE_KEY_REFUSED };
  }
  return { jwk };
}

/**
 * The admin API's body from the form, for create (with the identifier) or edit (every field of
 * the patch schema, the identifier left out: it cannot change): scopes space-separated,
 * checkboxes present or not, the key as JSON or PEM. Anything the form cannot express as the
 * schema's type is a field error here; everything else is left for the schema to judge.
 */
function bodyFromForm(values: FormValues, mode: 'create' | 'edit'): { body: Record<string, unknown>; errors: FieldError[]; values: FormValues } {
  const errors: FieldError[] = [];
  const body: Record<string, unknown> = {
    name: values.name,
    scopes: listField(values.scopes),
    signing_alg: values.signing_alg,
    encrypt_whole_token: checked(values.encrypt_whole_token),
    token_format: values.token_format,
    require_sender_constraint: checked(values.require_sender_constraint),
  };
  if (mode === 'create') body['identifier'] = values.identifier.trim();
  const ttl = values.access_token_ttl.trim();
  // Not a number: NaN, which the schema refuses in its own words. Left empty: the default (900 s) when creating, refused when editing.
  if (ttl !== '' || mode === 'edit') body['access_token_ttl'] = /^-?[\d.]+$/.test(ttl) ? Number(ttl) : Number.NaN;
  const key = innerKeyFromForm(values.inner_encryption_jwk.trim());
  if (key.error === undefined) body['inner_encryption_jwk'] = key.jwk;
  else errors.push({ pointer: '#/inner_encryption_jwk', detail: key.error });
  return { body, errors, values: key.forget === true ? { ...values, inner_encryption_jwk: '' } : values };
}

/**
 * The If-Match of an edit: the version the form was read at. A form without one matches no
 * version (an ETag is never empty), so it is refused as stale rather than overwriting blindly.
 */
function ifMatchOf(form: Record<string, string>): string {
  const version = form['version'] ?? '';
  return version.trim() === '' ? '""' : version;
}

/** A refusal as field errors: the service's own, or its message for the whole form. */
function refusalErrors(error: ManagementError): FieldError[] {
  return [...(error.errors ?? [{ pointer: '#', detail: error.message }])];
}

export function resourceServersArea(management: Pick<ManagementServices, 'resourceServers'>): ConsoleAreaModule {
  const { resourceServers } = management;

  return {
    id: 'resource-servers',
    register(router: Router, kit: ConsoleKit) {
      // Matched below ISSUER's path, which a proxy in front strips (links use listUrl).
      const path = `${CONSOLE_PATH}/resource-servers`;
      const listUrl = `${kit.consoleUrl}/resource-servers`;
      const serverUrl = (id: string) => `${listUrl}/${encodeURIComponent(id)}`;
      const formOptions = { signingAlgs: SIGNING_ALGS, tokenFormats: TOKEN_FORMATS, listUrl };

      function renderNew(ctx: ParameterizedContext, values: FormValues, status = 200, errors: FormErrors<Field> = NO_ERRORS): void {
        kit.render(
          ctx,
          'console-resource-server-new',
          { ...formOptions, title: hasErrors(errors) ? 'Error: New resource server' : 'New resource server', action: listUrl, values, errors: errors.fields, general: errors.general },
          status,
        );
      }

      function renderEdit(
        ctx: ParameterizedContext,
        server: ResourceServerResponse,
        options: { values?: FormValues; version?: string; errors?: FormErrors<Field>; status?: number; message?: string | undefined } = {},
      ): void {
        const errors = options.errors ?? NO_ERRORS;
        kit.render(
          ctx,
          'console-resource-server',
          {
            ...formOptions,
            title: hasErrors(errors) ? `Error: ${server.name}` : server.name,
            server,
            action: serverUrl(server.id),
            deleteUrl: `${serverUrl(server.id)}/delete`,
            values: options.values ?? valuesFrom(server),
            version: options.version ?? versionOf(server),
            errors: errors.fields,
            general: errors.general,
            message: options.message,
          },
          options.status,
        );
      }

      function notFound(ctx: ParameterizedContext): void {
        kit.render(ctx, 'error', { title: 'Resource server not found', message: 'No resource server with that id. It may have been deleted.', requestId: ctx.state.requestId }, 404);
      }

      /** The resource server, or undefined after answering 404. */
      async function find(ctx: ParameterizedContext): Promise<ResourceServerResponse | undefined> {
        try {
          return await resourceServers.get((ctx.params as Record<string, string | undefined>)['id'] ?? '');
        } catch (error) {
          if (!(error instanceof ManagementError) || error.code !== 'not_found') throw error;
          notFound(ctx);
          return undefined;
        }
      }

      router.get(path, kit.requireArea('resource-servers'), async function listResourceServers(ctx) {
        const cursor = queryValue(ctx.query['cursor']);
        try {
          const page = await resourceServers.list({ limit: DEFAULT_LIMIT, cursor: cursor === '' ? undefined : cursor });
          kit.render(ctx, 'console-resource-servers', {
            title: 'Resource servers',
            items: page.items.map((server) => ({ ...server, href: serverUrl(server.id) })),
            ...pageLinks(listUrl, cursor, page.next_cursor),
            newUrl: `${listUrl}/new`,
            message: doneMessage(DONE_MESSAGES, ctx.query['done']),
          });
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          kit.pageNotFound(ctx);
        }
      });

      router.get(`${path}/new`, kit.requireArea('resource-servers'), function newResourceServer(ctx) {
        renderNew(ctx, EMPTY_FORM);
      });

      router.post(path, kit.requireArea('resource-servers'), async function createResourceServer(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const { body, errors, values } = bodyFromForm(valuesOf(form), 'create');
        try {
          const parsed = parseOrThrow(createResourceServerBody, body);
          if (errors.length === 0) {
            const created = await resourceServers.create(parsed, kit.audit(ctx));
            kit.redirect(ctx, `${serverUrl(created.id)}?done=created`);
            return;
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          errors.push(...refusalErrors(error));
        }
        // The form's own errors (a key that is neither JSON nor a public PEM) and the schema's or the service's, each next to its field.
        renderNew(ctx, values, 400, errorsByField(errors, FIELDS, body));
      });

      router.get(`${path}/:id`, kit.requireArea('resource-servers'), async function showResourceServer(ctx) {
        const server = await find(ctx);
        if (server === undefined) return;
        renderEdit(ctx, server, { message: doneMessage(DONE_MESSAGES, ctx.query['done']) });
      });

      router.post(`${path}/:id`, kit.requireArea('resource-servers'), async function updateResourceServer(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const server = await find(ctx);
        if (server === undefined) return;
        const { body, errors, values } = bodyFromForm(valuesOf(form), 'edit');
        try {
          const parsed = parseOrThrow(patchResourceServerBody, body);
          if (errors.length === 0) {
            // The version the form was read at: a change by someone else since then is refused, not overwritten.
            await resourceServers.update(server.id, parsed, kit.audit(ctx), ifMatchOf(form));
            kit.redirect(ctx, `${serverUrl(server.id)}?done=updated`);
            return;
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          if (error.code === 'precondition_failed') {
            // The current values and version, so the person can make their change again on top of them.
            const current = await find(ctx);
            if (current === undefined) return;
            return renderEdit(ctx, current, { errors: { fields: {}, general: [STALE_FORM_MESSAGE] }, status: ERROR_STATUS.precondition_failed });
          }
          if (error.code !== 'validation_failed') {
            return renderEdit(ctx, server, { values: { ...values, identifier: server.identifier }, version: form['version'] ?? '', errors: { fields: {}, general: [error.message] }, status: ERROR_STATUS[error.code] });
          }
          errors.push(...refusalErrors(error));
        }
        renderEdit(ctx, server, { values: { ...values, identifier: server.identifier }, version: form['version'] ?? '', errors: errorsByField(errors, FIELDS, body), status: 400 });
      });

      function renderDelete(ctx: ParameterizedContext, server: ResourceServerResponse, refusal?: { message: string; clientIds: readonly string[] }, status?: number): void {
        kit.render(
          ctx,
          'console-resource-server-delete',
          { title: refusal === undefined ? `Delete ${server.name}?` : `Error: Delete ${server.name}?`, server, action: `${serverUrl(server.id)}/delete`, cancelUrl: serverUrl(server.id), listUrl, refusal },
          status,
        );
      }

      router.get(`${path}/:id/delete`, kit.requireArea('resource-servers'), async function confirmDelete(ctx) {
        const server = await find(ctx);
        if (server === undefined) return;
        renderDelete(ctx, server);
      });

      router.post(`${path}/:id/delete`, kit.requireArea('resource-servers'), async function deleteResourceServer(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const server = await find(ctx);
        if (server === undefined) return;
        try {
          await resourceServers.delete(server.id, kit.audit(ctx));
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          // The built-in one, or one that clients still name: the service's words, and the clients to change first.
          return renderDelete(ctx, server, { message: error.message, clientIds: error.clientIds ?? [] }, ERROR_STATUS[error.code]);
        }
        kit.redirect(ctx, `${listUrl}?done=deleted`);
      });
    },
  };
}
