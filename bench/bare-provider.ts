import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { CompactEncrypt, importJWK, type JWK } from 'jose';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * The baselines for `npm run bench:tokens`: a bare oidc-provider (the project's version) issuing
 * ES256 JWT access tokens with the client-credentials grant, the way a team would add Gatehouse's
 * layers to it by hand with jose, on the event loop. One static client per layer, the in-memory
 * adapter, no Koa app around it, no database: what the library costs on its own.
 *
 * - `BARE_CLIENT_ID`: plain JWTs for `BARE_RESOURCE`;
 * - `<BARE_CLIENT_ID>-inner`: the same with an `inner` claim, a compact JWE (ECDH-ES+A256KW,
 *   A256GCM, P-256) of `{jti, client_id}` to the resource server's key, added in the JWT customizer;
 * - `<BARE_CLIENT_ID>-nested`: inner, then the whole signed JWT encrypted the same way (cty "JWT").
 *
 * Environment: PORT, BARE_CLIENT_ID, BARE_CLIENT_SECRET (every client's), BARE_RESOURCE.
 * Prints `ready <url>` on stdout once listening. Run it only through bench/tokens.ts.
 */

const port = Number(process.env['PORT']);
if (!Number.isInteger(port) || port <= 0) throw new Error('bare-provider needs PORT (the issuer names it)');
const clientId = process.env['BARE_CLIENT_ID'] ?? 'bench-bare';
const clientSecret = process.env['BARE_CLIENT_SECRET'] ?? randomBytes(32).toString('base64url');
const resource = process.env['BARE_RESOURCE'] ?? 'https://bare.bench.invalid';

type Layers = 'plain' | 'inner' | 'nested';
/** Each client's resource server, and what its tokens carry. */
const layersByClient = new Map<string, Layers>([
  [clientId, 'plain'],
  [`${clientId}-inner`, 'inner'],
  [`${clientId}-nested`, 'nested'],
]);
const resourceOf = (layers: Layers) => (layers === 'plain' ? resource : `${resource}/${layers}`);
const layersOfResource = new Map<string, Layers>([...layersByClient.values()].map((layers) => [resourceOf(layers), layers]));

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };
// The resource server's encryption key (its private half would be the resource server's).
const { publicKey: encryptionPublic } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const encryptionKey = await importJWK(encryptionPublic.export({ format: 'jwk' }) as JWK, 'ECDH-ES+A256KW');

const encrypt = (plaintext: string, cty?: string) =>
  new CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', ...(cty === undefined ? {} : { cty }) }).encrypt(encryptionKey);

const configuration: Configuration = {
  clients: [...layersByClient.keys()].map((client_id) => ({
    client_id,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, client) => resourceOf(layersByClient.get(client.clientId) ?? 'plain'),
      getResourceServerInfo: (_ctx, indicator) => ({
        scope: 'bench:read',
        audience: indicator,
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
      useGrantedResource: () => true,
    },
  },
  formats: {
    customizers: {
      async jwt(_ctx, token, jwt) {
        const layers = layersOfResource.get(String(token.aud));
        if (layers === 'inner' || layers === 'nested') {
          jwt.payload['inner'] = await encrypt(JSON.stringify({ jti: token.jti, client_id: token.clientId }));
        }
      },
    },
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
// The nested client's whole signed token, encrypted on its way out.
provider.use(async (ctx: KoaContextWithOIDC, next) => {
  await next();
  const body = ctx.body as { access_token?: unknown } | undefined;
  if (ctx.oidc?.route === 'token' && typeof body?.access_token === 'string' && layersByClient.get(ctx.oidc.client?.clientId ?? '') === 'nested') {
    body.access_token = await encrypt(body.access_token, 'JWT');
  }
});
const server = provider.listen(port, '127.0.0.1');
server.keepAliveTimeout = 5_000;
server.once('listening', () => {
  const { port: actual } = server.address() as AddressInfo;
  process.stdout.write(`ready http://127.0.0.1:${actual}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
