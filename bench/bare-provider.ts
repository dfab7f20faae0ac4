import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';

/**
 * The baseline for `npm run bench:tokens`: a bare oidc-provider (the project's version) issuing
 * plain ES256 JWT access tokens with the client-credentials grant. One static client, the
 * in-memory adapter, no Koa app around it, no database: what the library costs on its own.
 *
 * Environment: PORT, BARE_CLIENT_ID, BARE_CLIENT_SECRET, BARE_RESOURCE.
 * Prints `ready <url>` on stdout once listening. Run it only through bench/tokens.ts.
 */

const port = Number(process.env['PORT']);
if (!Number.isInteger(port) || port <= 0) throw new Error('bare-provider needs PORT (the issuer names it)');
const clientId = process.env['BARE_CLIENT_ID'] ?? 'bench-bare';
const clientSecret = process.env['BARE_CLIENT_SECRET'] ?? randomBytes(32).toString('base64url');
const resource = process.env['BARE_RESOURCE'] ?? 'https://bare.bench.invalid';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const configuration: Configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // Gatehouse turns DPoP off too, so both run the same token-endpoint checks.
    dPoP: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      getResourceServerInfo: () => ({
        scope: 'bench:read',
        audience: resource,
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
      useGrantedResource: () => true,
    },
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
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
