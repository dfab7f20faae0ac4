import { z } from 'zod';
import { auditEventRoutes } from './audit-events/routes.js';
import { clientRoutes } from './clients/routes.js';
import { gatewayRouteRoutes } from './gateway-routes/routes.js';
import { identityProviderRoutes } from './identity-providers/routes.js';
import { keyRoutes } from './keys/routes.js';
import { resourceServerRoutes } from './resource-servers/routes.js';
import { named, route, type AdminRoute, type RouteTable } from './route.js';
import { userRoutes } from './users/routes.js';

/** The OpenAPI document's own shape, as far as a reader of it may rely on. */
export const openApiDocumentResponse = z
  .looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) })
  .describe('This document.');

export type OpenApiDocumentResponse = z.infer<typeof openApiDocumentResponse>;

const documentRoutes: RouteTable = {
  tag: { name: 'Document', description: 'This document.' },
  routes: [
    route({
      operationId: 'readOpenApiDocument',
      method: 'get',
      path: '/openapi.json',
      summary: 'This OpenAPI document',
      description: 'Public: no token is needed.',
      // Public, so tools can read it without a token (SPEC §5).
      scope: null,
      response: {
        status: 200,
        description: 'The OpenAPI 3.1 document of the admin API.',
        schema: named('OpenApiDocument', openApiDocumentResponse),
        cacheControl: 'public, max-age=300',
      },
      errors: [],
      handler: (_input, { openApiDocument }) => openApiDocument() as OpenApiDocumentResponse,
    }),
  ],
};

/** Every route table of the admin API, in the order the router registers and the document lists them. */
export const ROUTE_TABLES: readonly RouteTable[] = [clientRoutes, resourceServerRoutes, userRoutes, auditEventRoutes, keyRoutes, gatewayRouteRoutes, identityProviderRoutes, documentRoutes];

export const ADMIN_ROUTES: readonly AdminRoute[] = ROUTE_TABLES.flatMap((table) => table.routes);
