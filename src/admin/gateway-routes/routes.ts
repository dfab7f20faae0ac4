import { listQuery, pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, WITH_BODY, type PathParam, type RouteTable } from '../route.js';
import { gatewayRouteResponse } from '../../management/gateway-routes/presenter.js';
import { createGatewayRouteBody, patchGatewayRouteBody } from '../../management/gateway-routes/schema.js';

/** Gateway routes: `/admin/v1/gateway-routes` (SPEC §7), scope `admin:gateway`. */

const GatewayRoute = named('GatewayRoute', gatewayRouteResponse);
const GatewayRoutePage = named('GatewayRoutePage', pageOf(gatewayRouteResponse), [GatewayRoute]);
const GatewayRouteCreate = named('GatewayRouteCreate', createGatewayRouteBody);
const GatewayRoutePatch = named('GatewayRoutePatch', patchGatewayRouteBody);

const gatewayRouteId: PathParam = { schema: gatewayRouteResponse.shape.id, description: 'The gateway route’s id.' };

const CHECKS =
  '`resource_server` and `upstream_resource_server` must be registered resource servers and `required_scopes` scopes of `resource_server`; an `anonymous` route has no `required_*`, no `require_mfa` and no token to exchange, and only it may have no `resource_server`.';

export const gatewayRouteRoutes: RouteTable = {
  tag: { name: 'Gateway routes', description: 'Which requests the API gateway lets through (SPEC §7): the most specific host and the longest path prefix win; no match is denied. Scope `admin:gateway`.' },
  routes: [
    route({
      operationId: 'listGatewayRoutes',
      method: 'get',
      path: '/gateway-routes',
      summary: 'List gateway routes',
      description: 'Oldest first.',
      scope: 'admin:gateway',
      query: listQuery,
      response: { status: 200, description: 'A page of gateway routes.', schema: GatewayRoutePage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { gatewayRoutes }) => gatewayRoutes.list(query),
    }),
    route({
      operationId: 'createGatewayRoute',
      method: 'post',
      path: '/gateway-routes',
      summary: 'Create a gateway route',
      description: CHECKS,
      scope: 'admin:gateway',
      body: {
        schema: GatewayRouteCreate,
        required: true,
        example: {
          host: 'api.example.com',
          path_prefix: '/orders',
          methods: ['GET', 'POST'],
          resource_server: 'https://orders.example.com',
          required_scopes: ['orders:read'],
        },
      },
      response: { status: 201, description: 'The stored gateway route.', schema: GatewayRoute, location: (stored) => `/gateway-routes/${stored.id}` },
      errors: [...WITH_BODY, 409, ...AUTHENTICATED],
      conflict: 'A route with the same `host`, `path_prefix` and `methods` already exists.',
      handler: ({ body, caller }, { gatewayRoutes }) => gatewayRoutes.create(body, caller),
    }),
    route({
      operationId: 'readGatewayRoute',
      method: 'get',
      path: '/gateway-routes/{id}',
      summary: 'Read a gateway route',
      scope: 'admin:gateway',
      params: { id: gatewayRouteId },
      response: { status: 200, description: 'The gateway route.', schema: GatewayRoute, etag: true },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params }, { gatewayRoutes }) => gatewayRoutes.get(params.id),
    }),
    route({
      operationId: 'updateGatewayRoute',
      method: 'patch',
      path: '/gateway-routes/{id}',
      summary: 'Update a gateway route',
      description: `Given fields replace the stored ones and the result is checked as a whole: ${CHECKS}`,
      scope: 'admin:gateway',
      params: { id: gatewayRouteId },
      ifMatch: true,
      body: { schema: GatewayRoutePatch, required: false },
      response: { status: 200, description: 'The updated gateway route.', schema: GatewayRoute, etag: true },
      errors: [...WITH_BODY, 404, 409, 412, ...AUTHENTICATED],
      conflict: 'Another route already has the resulting `host`, `path_prefix` and `methods`.',
      handler: ({ params, body, caller, ifMatch }, { gatewayRoutes }) => gatewayRoutes.update(params.id, body, caller, ifMatch),
    }),
    route({
      operationId: 'deleteGatewayRoute',
      method: 'delete',
      path: '/gateway-routes/{id}',
      summary: 'Delete a gateway route',
      description: 'Requests it matched are matched by the next most specific route, or denied.',
      scope: 'admin:gateway',
      params: { id: gatewayRouteId },
      response: { status: 204, description: 'Deleted.' },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params, caller }, { gatewayRoutes }) => gatewayRoutes.delete(params.id, caller),
    }),
  ],
};
