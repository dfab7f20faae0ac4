import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { SIGNING_ALGS, DEFAULT_SIGNING_ALG } from '../../crypto/signing-keys.js';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { ManagementError, parseOrThrow, type FieldError } from '../../management/errors.js';
import { errorsByField, hasErrors, NO_ERRORS, type FormErrors } from '../forms.js';
import type { ManagementServices } from '../../management/index.js';
import { DEFAULT_LIMIT } from '../../management/pagination.js';
import { createResourceServerBody, TOKEN_FORMATS } from '../../management/resource-servers/schema.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §11, the resource-servers area: a paged list and a create form. The form is parsed into
 * the admin API's body shape and validated by the same schema (createResourceServerBody), then
 * created through the same service and audited with the person as the actor.
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

function valuesOf(form: Record<string, string>): FormValues {
  const values = { ...EMPTY_FORM };
  for (const field of FIELDS) values[field] = form[field] ?? '';
  return values;
}

/**
 * The admin API's body from the form: scopes space-separated, checkboxes present or not, the JWK
 * pasted as JSON. Anything the form cannot express as the schema's type is a field error here;
 * everything else is left for the schema to judge.
 */
function bodyFromForm(values: FormValues): { body: Record<string, unknown>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const body: Record<string, unknown> = {
    identifier: values.identifier.trim(),
    name: values.name,
    scopes: values.scopes.split(/\s+/).filter((scope) => scope !== ''),
    signing_alg: values.signing_alg,
    encrypt_whole_token: values.encrypt_whole_token !== '',
    token_format: values.token_format,
    require_sender_constraint: values.require_sender_constraint !== '',
  };
  const ttl = values.access_token_ttl.trim();
  // Left empty: the schema's default (900 s). Not a number: NaN, which the schema refuses in its own words.
  if (ttl !== '') body['access_token_ttl'] = /^-?[\d.]+$/.test(ttl) ? Number(ttl) : Number.NaN;
  const jwk = values.inner_encryption_jwk.trim();
  if (jwk === '') {
    body['inner_encryption_jwk'] = null;
  } else {
    try {
      body['inner_encryption_jwk'] = JSON.parse(jwk) as unknown;
    } catch {
      errors.push({ pointer: '#/inner_encryption_jwk', detail: 'must be a JWK as JSON, e.g. {"kty":"EC", …}' });
    }
  }
  return { body, errors };
}

export function resourceServersArea(management: Pick<ManagementServices, 'resourceServers'>): ConsoleAreaModule {
  const { resourceServers } = management;

  return {
    id: 'resource-servers',
    register(router: Router, kit: ConsoleKit) {
      const path = `${CONSOLE_PATH}/resource-servers`;
      const listUrl = `${kit.consoleUrl}/resource-servers`;

      function renderForm(ctx: ParameterizedContext, values: FormValues, status = 200, errors: FormErrors<Field> = NO_ERRORS): void {
        kit.render(
          ctx,
          'console-resource-server-new',
          { title: hasErrors(errors) ? 'Error: New resource server' : 'New resource server', action: listUrl, listUrl, values, errors: errors.fields, general: errors.general, signingAlgs: SIGNING_ALGS, tokenFormats: TOKEN_FORMATS },
          status,
        );
      }

      router.get(path, kit.requireArea('resource-servers'), async function listResourceServers(ctx) {
        const cursor = typeof ctx.query['cursor'] === 'string' && ctx.query['cursor'] !== '' ? ctx.query['cursor'] : undefined;
        try {
          const page = await resourceServers.list({ limit: DEFAULT_LIMIT, cursor });
          const next = page.next_cursor === null ? undefined : `${listUrl}?${new URLSearchParams({ cursor: page.next_cursor }).toString()}`;
          kit.render(ctx, 'console-resource-servers', { title: 'Resource servers', items: page.items, next, newUrl: `${listUrl}/new`, firstUrl: cursor === undefined ? undefined : listUrl });
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          kit.render(ctx, 'error', { title: 'Page not found', message: 'That page of the list does not exist. Start again from the first page.', requestId: ctx.state.requestId }, 400);
        }
      });

      router.get(`${path}/new`, kit.requireArea('resource-servers'), function newResourceServer(ctx) {
        renderForm(ctx, EMPTY_FORM);
      });

      router.post(path, kit.requireArea('resource-servers'), async function createResourceServer(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const values = valuesOf(form);
        const { body, errors } = bodyFromForm(values);
        try {
          const parsed = parseOrThrow(createResourceServerBody, body);
          if (errors.length === 0) {
            await resourceServers.create(parsed, kit.audit(ctx));
            ctx.status = 303;
            ctx.redirect(listUrl);
            return;
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          errors.push(...(error.errors ?? [{ pointer: '#', detail: error.message }]));
        }
        // The form's own errors (a JWK that is not JSON) and the schema's or the service's, each next to its field.
        renderForm(ctx, values, 400, errorsByField(errors, FIELDS, body));
      });
    },
  };
}
