import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { ManagementError, parseOrThrow, PreconditionFailed, type FieldError } from '../../management/errors.js';
import type { ManagementServices } from '../../management/index.js';
import { DEFAULT_LIMIT } from '../../management/pagination.js';
import type { GatewayRouteResponse } from '../../management/gateway-routes/presenter.js';
import { createGatewayRouteBody, HTTP_METHODS, IDENTITY_HEADERS, patchGatewayRouteBody, UPSTREAM_TOKENS } from '../../management/gateway-routes/schema.js';
import { checked, doneMessage, pageLinks, ERROR_STATUS, errorsByField, type FormErrors, hasErrors, listField, NO_ERRORS, queryValue, STALE_FORM_MESSAGE, versionOf } from '../forms.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §7 and §11, the gateway-routes area: a paged list, a create form, an edit form carrying
 * the version it was read at, and deletion behind a confirmation page. Forms are parsed into the
 * admin API's body shape and judged by its schemas (createGatewayRouteBody,
 * patchGatewayRouteBody), then go through the same service and audit, the person as the actor.
 */

const FIELDS = [
  'host',
  'path_prefix',
  'methods',
  'resource_server',
  'required_scopes',
  'required_roles',
  'require_mfa',
  'anonymous',
  'browser_sign_in',
  'upstream_token',
  'upstream_resource_server',
  'identity_headers',
] as const;
type Field = (typeof FIELDS)[number];

/** What the person typed, kept as typed; `methods` is the checked methods, space-separated. */
type FormValues = Record<Field, string>;

const EMPTY_FORM: FormValues = {
  host: '',
  path_prefix: '/',
  methods: '',
  resource_server: '',
  required_scopes: '',
  required_roles: '',
  require_mfa: '',
  anonymous: '',
  browser_sign_in: '',
  upstream_token: 'pass',
  upstream_resource_server: '',
  identity_headers: 'public',
};

/** Fixed messages after a redirect, so the query string cannot put words on the page. */
const DONE_MESSAGES = {
  created: 'Gateway route created. The gateway applies it from now on.',
  saved: 'Changes saved. The gateway applies them from now on.',
  deleted: 'Gateway route deleted. Requests it matched now fall to the next most specific route, or are denied.',
} as const;

/** Each method is its own checkbox (`method-GET`): a repeated field name is refused by readForm. */
function valuesOf(form: Record<string, string>): FormValues {
  const values = { ...EMPTY_FORM };
  for (const field of FIELDS) values[field] = form[field] ?? '';
  values.methods = HTTP_METHODS.filter((method) => checked(form[`method-${method}`])).join(' ');
  return values;
}

function valuesFrom(route: GatewayRouteResponse): FormValues {
  return {
    host: route.host,
    path_prefix: route.path_prefix,
    methods: (route.methods ?? []).join(' '),
    resource_server: route.resource_server ?? '',
    required_scopes: route.required_scopes.join(' '),
    required_roles: route.required_roles.join(' '),
    require_mfa: route.require_mfa ? 'on' : '',
    anonymous: route.anonymous ? 'on' : '',
    browser_sign_in: route.browser_sign_in ? 'on' : '',
    upstream_token: route.upstream_token,
    upstream_resource_server: route.upstream_resource_server ?? '',
    identity_headers: route.identity_headers,
  };
}

/** The admin API's body: lists space-separated, no method checked = all (null), empty URIs = null. */
function bodyFromForm(values: FormValues): Record<string, unknown> {
  const methods = listField(values.methods);
  return {
    host: values.host,
    path_prefix: values.path_prefix.trim(),
    methods: methods.length === 0 ? null : methods,
    resource_server: values.resource_server.trim() === '' ? null : values.resource_server.trim(),
    required_scopes: listField(values.required_scopes),
    required_roles: listField(values.required_roles),
    require_mfa: checked(values.require_mfa),
    anonymous: checked(values.anonymous),
    browser_sign_in: checked(values.browser_sign_in),
    upstream_token: values.upstream_token,
    upstream_resource_server: values.upstream_resource_server.trim() === '' ? null : values.upstream_resource_server.trim(),
    identity_headers: values.identity_headers,
  };
}

function errorsOf(error: ManagementError): FieldError[] {
  return [...(error.errors ?? [{ pointer: '#', detail: error.message }])];
}

export function gatewayRoutesArea(management: Pick<ManagementServices, 'gatewayRoutes'>): ConsoleAreaModule {
  const { gatewayRoutes } = management;

  return {
    id: 'gateway',
    register(router: Router, kit: ConsoleKit) {
      // Matched below ISSUER's path, which a proxy in front strips (links use listUrl).
      const path = `${CONSOLE_PATH}/gateway`;
      const listUrl = `${kit.consoleUrl}/gateway`;
      const routeUrl = (id: string) => `${listUrl}/${encodeURIComponent(id)}`;
      const choices = { httpMethods: HTTP_METHODS, upstreamTokens: UPSTREAM_TOKENS, identityHeaderModes: IDENTITY_HEADERS };
      const crumbs = [{ title: 'Gateway routes', href: listUrl }];

      function renderNew(ctx: ParameterizedContext, values: FormValues, status = 200, errors: FormErrors<Field> = NO_ERRORS): void {
        kit.render(
          ctx,
          'console-gateway-route',
          { title: hasErrors(errors) ? 'Error: New gateway route' : 'New gateway route', heading: 'New gateway route', action: listUrl, submit: 'Create gateway route', crumbs, listUrl, values, errors: errors.fields, general: errors.general, ...choices },
          status,
        );
      }

      function renderEdit(
        ctx: ParameterizedContext,
        route: GatewayRouteResponse,
        options: { values?: FormValues; version?: string; status?: number; errors?: FormErrors<Field>; message?: string } = {},
      ): void {
        const errors = options.errors ?? NO_ERRORS;
        kit.render(
          ctx,
          'console-gateway-route',
          {
            title: hasErrors(errors) ? 'Error: Gateway route' : 'Gateway route',
            heading: `Gateway route ${route.host}${route.path_prefix}`,
            action: routeUrl(route.id),
            submit: 'Save changes',
            crumbs,
            listUrl,
            route,
            version: options.version ?? versionOf(route),
            deleteUrl: `${routeUrl(route.id)}/delete`,
            values: options.values ?? valuesFrom(route),
            errors: errors.fields,
            general: errors.general,
            message: options.message,
            ...choices,
          },
          options.status,
        );
      }

      const notFound = (ctx: ParameterizedContext): void => kit.notFound(ctx, 'Gateway route');
      const load = (ctx: ParameterizedContext): Promise<GatewayRouteResponse | undefined> => kit.find(ctx, 'Gateway route', (id) => gatewayRoutes.get(id));

      router.get(path, kit.requireArea('gateway'), async function listGatewayRoutes(ctx) {
        const cursor = queryValue(ctx.query['cursor']);
        try {
          const page = await gatewayRoutes.list({ limit: DEFAULT_LIMIT, cursor: cursor === '' ? undefined : cursor });
          kit.render(ctx, 'console-gateway', {
            title: 'Gateway routes',
            items: page.items.map((route) => ({ ...route, href: routeUrl(route.id) })),
            ...pageLinks(listUrl, cursor, page.next_cursor),
            newUrl: `${listUrl}/new`,
            message: doneMessage(DONE_MESSAGES, ctx.query['done']),
          });
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          kit.pageNotFound(ctx);
        }
      });

      router.get(`${path}/new`, kit.requireArea('gateway'), function newGatewayRoute(ctx) {
        renderNew(ctx, EMPTY_FORM);
      });

      router.post(path, kit.requireArea('gateway'), async function createGatewayRoute(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const values = valuesOf(form);
        const body = bodyFromForm(values);
        try {
          const created = await gatewayRoutes.create(parseOrThrow(createGatewayRouteBody, body), kit.audit(ctx));
          return kit.redirect(ctx, `${routeUrl(created.id)}?done=created`);
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          renderNew(ctx, values, ERROR_STATUS[error.code], errorsByField(errorsOf(error), FIELDS, body));
        }
      });

      router.get(`${path}/:id`, kit.requireArea('gateway'), async function showGatewayRoute(ctx) {
        const route = await load(ctx);
        if (route === undefined) return;
        renderEdit(ctx, route, { message: doneMessage(DONE_MESSAGES, ctx.query['done']) });
      });

      router.post(`${path}/:id`, kit.requireArea('gateway'), async function updateGatewayRoute(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const current = await load(ctx);
        if (current === undefined) return;
        const values = valuesOf(form);
        const body = bodyFromForm(values);
        // A form without the version it was read at cannot show it is current: refused as stale.
        const version = form['version'] ?? '';
        try {
          if (version === '') throw new PreconditionFailed('The form carries no version.');
          const updated = await gatewayRoutes.update(current.id, parseOrThrow(patchGatewayRouteBody, body), kit.audit(ctx), version);
          return kit.redirect(ctx, `${routeUrl(updated.id)}?done=saved`);
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          if (error.code === 'precondition_failed') {
            // Nothing was saved: the current values, at their version, and the conflict message.
            const fresh = await load(ctx);
            if (fresh === undefined) return;
            return renderEdit(ctx, fresh, { status: 409, errors: { fields: {}, general: [STALE_FORM_MESSAGE] } });
          }
          if (error.code === 'not_found') return notFound(ctx);
          renderEdit(ctx, current, { values, version, status: ERROR_STATUS[error.code], errors: errorsByField(errorsOf(error), FIELDS, body) });
        }
      });

      router.get(`${path}/:id/delete`, kit.requireArea('gateway'), async function confirmDeleteGatewayRoute(ctx) {
        const route = await load(ctx);
        if (route === undefined) return;
        kit.render(ctx, 'console-gateway-route-delete', { title: 'Delete gateway route', route, crumbs: [...crumbs, { title: `${route.host}${route.path_prefix}`, href: routeUrl(route.id) }], action: `${routeUrl(route.id)}/delete`, cancelHref: routeUrl(route.id) });
      });

      router.post(`${path}/:id/delete`, kit.requireArea('gateway'), async function deleteGatewayRoute(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const route = await load(ctx);
        if (route === undefined) return;
        try {
          await gatewayRoutes.delete(route.id, kit.audit(ctx));
        } catch (error) {
          if (error instanceof ManagementError && error.code === 'not_found') return notFound(ctx);
          throw error;
        }
        kit.redirect(ctx, `${listUrl}?done=deleted`);
      });
    },
  };
}
