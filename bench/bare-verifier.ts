import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';

/**
 * The baseline for `npm run bench:gateway`: what a team would write instead of Gatehouse's gateway
 * door, a bare `node:http` server answering nginx's auth_request by verifying the bearer token with
 * jose against Gatehouse's JWKS, fetched once and cached (no refresh, no revocation, no routes, no
 * scopes, no logs, no metrics): 200 for a valid token for `BARE_AUDIENCE`, 401 otherwise.
 *
 * Environment: PORT, BARE_ISSUER, BARE_AUDIENCE. Prints `ready <url>` once listening. Run it only
 * through bench/gateway.ts.
 */

const port = Number(process.env['PORT']);
const issuer = process.env['BARE_ISSUER'];
const audience = process.env['BARE_AUDIENCE'];
if (!Number.isInteger(port) || issuer === undefined || audience === undefined) throw new Error('bare-verifier needs PORT, BARE_ISSUER and BARE_AUDIENCE');

const jwks = createLocalJWKSet((await (await fetch(`${issuer}/jwks`)).json()) as JSONWebKeySet);

const server = http.createServer((request, response) => {
  const header = request.headers.authorization ?? '';
  const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
  jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' }).then(
    () => response.writeHead(200).end(),
    () => response.writeHead(401).end(),
  );
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
