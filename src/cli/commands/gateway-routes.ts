import { listQuery } from '../../management/pagination.js';
import { parseOrThrow } from '../../management/errors.js';
import type { GatewayRouteResponse } from '../../management/gateway-routes/presenter.js';
import { createGatewayRouteBody, IDENTITY_HEADERS, patchGatewayRouteBody, UPSTREAM_TOKENS } from '../../management/gateway-routes/schema.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, record, table, type Command, type Invocation, type OptionSpec } from '../command.js';
import { withServices } from '../context.js';
import { given, splitScopes } from '../input.js';

const ROUTE_ID = { min: 1, max: 1 };

function routeRow(route: GatewayRouteResponse): string[] {
  return [
    route.id,
    route.host,
    route.path_prefix,
    route.methods === null ? '*' : route.methods.join(','),
    route.anonymous ? '(anonymous)' : (route.resource_server ?? ''),
    route.required_scopes.join(','),
    route.upstream_token,
  ];
}

function show(invocation: Invocation, route: GatewayRouteResponse): void {
  if (invocation.output.json) printJson(invocation.output, route);
  else invocation.output.out(record(route));
}

/** `true`/`false` as booleans; anything else as given, for the schema to explain what is wrong. */
function booleanOrText(value: string | undefined): boolean | string | undefined {
  if (value === undefined) return undefined;
  return value === 'true' ? true : value === 'false' ? false : value;
}

/** `none` stands for null where a field may be empty (no resource server, all methods). */
function orNone(value: string | undefined): string | null | undefined {
  return value === 'none' ? null : value;
}

const FIELD_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  host: { type: 'string', value: 'HOST', field: 'host', help: 'the request host: api.example.com, api.example.com:8443 or *.example.com' },
  'path-prefix': { type: 'string', value: 'PATH', field: 'path_prefix', help: 'matches this path and below it on a segment boundary, e.g. /orders' },
  method: { type: 'string', multiple: true, value: 'METHOD', field: 'methods', help: 'an uppercase HTTP method it covers (repeatable; none given: all)' },
  'resource-server': { type: 'string', value: 'URI', field: 'resource_server', help: 'identifier of the resource server whose tokens it accepts' },
  scope: { type: 'string', multiple: true, value: 'SCOPE', field: 'required_scopes', help: 'a scope of that resource server the token needs (all are needed)' },
  role: { type: 'string', multiple: true, value: 'ROLE', field: 'required_roles', help: 'a role a person may hold (one of them is needed)' },
  'upstream-token': { type: 'string', value: 'MODE', field: 'upstream_token', help: `what the upstream gets: ${UPSTREAM_TOKENS.join(' or ')} (default pass)` },
  'upstream-resource-server': { type: 'string', value: 'URI', field: 'upstream_resource_server', help: 'with exchange: the resource server the exchanged token is for' },
  'identity-headers': { type: 'string', value: 'SET', field: 'identity_headers', help: `identity headers for the upstream: ${IDENTITY_HEADERS.join(', ')} (default public)` },
};

/** The body fields the flags give; `booleans` reads the three switches. */
function fieldsOf(invocation: Invocation, booleans: (name: string) => boolean | string | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  given(body, 'host', invocation.string('host'));
  given(body, 'path_prefix', invocation.string('path-prefix'));
  given(body, 'methods', splitScopes(invocation.strings('method')), (list) => list.length > 0);
  given(body, 'resource_server', orNone(invocation.string('resource-server')));
  given(body, 'required_scopes', splitScopes(invocation.strings('scope')), (list) => list.length > 0);
  given(body, 'required_roles', splitScopes(invocation.strings('role')), (list) => list.length > 0);
  given(body, 'require_mfa', booleans('require-mfa'));
  given(body, 'anonymous', booleans('anonymous'));
  given(body, 'browser_sign_in', booleans('browser-sign-in'));
  given(body, 'upstream_token', invocation.string('upstream-token'));
  given(body, 'upstream_resource_server', orNone(invocation.string('upstream-resource-server')));
  given(body, 'identity_headers', invocation.string('identity-headers'));
  return body;
}

export const gatewayRouteCommands: readonly Command[] = [
  {
    path: ['gateway-routes', 'create'],
    usage: '--host HOST --path-prefix PATH (--resource-server URI | --anonymous) [options]',
    summary: 'add a route the API gateway lets through',
    description: [
      'Adds a gateway route, validated exactly as POST /admin/v1/gateway-routes validates it: the resource servers must be registered and the scopes theirs; an anonymous route requires nothing.',
      'The most specific host (exact beats *.wildcard) and then the longest path prefix win; a request no route matches is denied.',
    ],
    options: {
      ...FIELD_OPTIONS,
      'require-mfa': { type: 'boolean', field: 'require_mfa', help: 'a person must have signed in with a second factor' },
      anonymous: { type: 'boolean', field: 'anonymous', help: 'let requests through without identity' },
      'browser-sign-in': { type: 'boolean', field: 'browser_sign_in', help: 'send browsers without a session to sign in' },
    },
    examples: [
      'gatehouse gateway-routes create --host api.example.com --path-prefix /orders --resource-server https://orders.example.com --scope orders:read --method GET',
      'gatehouse gateway-routes create --host www.example.com --path-prefix /public --anonymous --identity-headers none',
    ],
    async run(invocation) {
      const body = fieldsOf(invocation, (name) => (invocation.flag(name) ? true : undefined));
      const definition = parseOrThrow(createGatewayRouteBody, body, 'input');
      const route = await withServices(invocation.output, ({ services, audit }) => services.gatewayRoutes.create(definition, audit));
      show(invocation, route);
      return EXIT.ok;
    },
  },
  {
    path: ['gateway-routes', 'list'],
    summary: 'list gateway routes',
    description: ['Lists gateway routes in the order they were created, as GET /admin/v1/gateway-routes does.'],
    options: { ...PAGE_OPTIONS },
    examples: ['gatehouse gateway-routes list', 'gatehouse gateway-routes list --json'],
    async run(invocation) {
      const query = parseOrThrow(listQuery, pageQueryOf(invocation), 'input');
      const page = await withServices(invocation.output, ({ services }) => services.gatewayRoutes.list(query));
      if (invocation.output.json) printJson(invocation.output, page);
      else {
        invocation.output.out(table(['ID', 'HOST', 'PATH_PREFIX', 'METHODS', 'RESOURCE_SERVER', 'SCOPES', 'UPSTREAM_TOKEN'], page.items.map(routeRow)));
        pageHint(invocation.output, page.next_cursor);
      }
      return EXIT.ok;
    },
  },
  {
    path: ['gateway-routes', 'show'],
    args: 'ID',
    positionals: ROUTE_ID,
    summary: 'show one gateway route',
    description: ['Shows a gateway route, as GET /admin/v1/gateway-routes/{id} does.'],
    examples: ['gatehouse gateway-routes show 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      show(invocation, await withServices(invocation.output, ({ services }) => services.gatewayRoutes.get(id)));
      return EXIT.ok;
    },
  },
  {
    path: ['gateway-routes', 'update'],
    args: 'ID',
    positionals: ROUTE_ID,
    summary: 'change a gateway route',
    description: [
      'Given flags replace the stored fields and the result is checked as a whole, as PATCH /admin/v1/gateway-routes/{id} does. --all-methods covers every method again; "none" empties --resource-server or --upstream-resource-server; the switches take true or false.',
    ],
    options: {
      ...FIELD_OPTIONS,
      'all-methods': { type: 'boolean', help: 'cover every method (methods: null)' },
      'require-mfa': { type: 'string', value: 'true|false', field: 'require_mfa', help: 'a person must have signed in with a second factor' },
      anonymous: { type: 'string', value: 'true|false', field: 'anonymous', help: 'let requests through without identity' },
      'browser-sign-in': { type: 'string', value: 'true|false', field: 'browser_sign_in', help: 'send browsers without a session to sign in' },
    },
    examples: ['gatehouse gateway-routes update 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60 --scope orders:write --require-mfa true'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      const body = fieldsOf(invocation, (name) => booleanOrText(invocation.string(name)));
      if (invocation.flag('all-methods')) body['methods'] = null;
      const patch = parseOrThrow(patchGatewayRouteBody, body, 'input');
      show(invocation, await withServices(invocation.output, ({ services, audit }) => services.gatewayRoutes.update(id, patch, audit)));
      return EXIT.ok;
    },
  },
  {
    path: ['gateway-routes', 'delete'],
    args: 'ID',
    positionals: ROUTE_ID,
    summary: 'delete a gateway route',
    description: ['Deletes the route: the requests it matched fall to the next most specific route, or are denied.'],
    examples: ['gatehouse gateway-routes delete 3f0c8a52-6a8e-4d55-9d2a-1c2b3d4e5f60'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      await withServices(invocation.output, ({ services, audit }) => services.gatewayRoutes.delete(id, audit));
      if (invocation.output.json) printJson(invocation.output, { id, deleted: true });
      else invocation.output.out(`deleted gateway route ${id}\n`);
      return EXIT.ok;
    },
  },
];
