import assert from 'node:assert/strict';
import { createHash, type X509Certificate } from 'node:crypto';
import { copyFile, readFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { exportJWK, importX509 } from 'jose';
import { decodeJwt } from '../support/admin-api.js';
import { commandAvailable } from '../support/gateway.js';
import { createPki, curl, type Issued, type Pki } from '../support/pki.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §8 with real certificates made by `openssl` and a real TLS client (`curl`): Gatehouse
 * serves HTTPS itself (TLS 1.2+), asks for an optional client certificate, and authenticates
 * clients with it (RFC 8705 `tls_client_auth` against the CA bundle and the registered subject,
 * compared as a DN or a SAN; `self_signed_tls_client_auth` against the client's `x5c`), binding
 * their tokens to the certificate (`cnf.x5t#S256`, kept by introspection). Renewed server
 * certificates are picked up on reload without dropping open connections.
 */

const curlAvailable = (await commandAvailable('curl', ['--version'])) && (await commandAvailable('openssl', ['version']));
const API = 'https://api.mtls.test';

const thumbprint = (certificate: X509Certificate) => createHash('sha256').update(certificate.raw).digest('base64url');

describe('TLS and mTLS client authentication', { skip: curlAvailable ? false : 'needs curl and openssl (.ci/run installs them)' }, () => {
  let pki: Pki;
  let serverCert: Issued;
  let server: TestServer;
  let admin: string;
  let orders: Issued;
  let ordersSpiffe: Issued;
  let rogue: Issued;
  let selfSigned: Issued;
  const ids: Record<string, string> = {};

  const call = (path: string, options: Parameters<typeof curl>[1] extends infer O ? Omit<O & object, 'ca'> : never) => curl(`${server.url}${path}`, { ca: pki.ca.certFile, ...options });
  const adminJson = async (method: string, path: string, json: unknown) => {
    const answer = await call(`/admin/v1${path}`, { method, json, headers: { authorization: `Bearer ${admin}` } });
    return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown> };
  };
  const token = (clientId: string, cert: Issued | undefined) =>
    call('/token', { ...(cert === undefined ? {} : { cert }), form: { grant_type: 'client_credentials', client_id: clientId, resource: API, scope: 'api:read' } });

  before(async () => {
    pki = await createPki();
    serverCert = await pki.issue('server', '/CN=127.0.0.1', { san: 'IP:127.0.0.1,DNS:localhost' });
    orders = await pki.issue('orders', '/C=US/O=Example, Inc./OU=Payments+OU=Orders/CN=orders service', { san: 'URI:spiffe://example.test/orders' });
    ordersSpiffe = await pki.issue('orders-spiffe', '/CN=other name', { san: 'URI:spiffe://example.test/orders' });
    const rogueCa = await pki.selfSigned('rogue-ca', '/CN=Rogue CA');
    rogue = await pki.issue('rogue', '/C=US/O=Example, Inc./OU=Payments+OU=Orders/CN=orders service', { issuer: rogueCa });
    selfSigned = await pki.selfSigned('self', '/CN=self-signed service');
    server = await startTestServer({ tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, clientCaFile: pki.ca.certFile } });
    const issued = await call('/token', { basic: [server.admin.clientId, server.admin.clientSecret], form: { grant_type: 'client_credentials', scope: 'admin:clients admin:resource-servers' } });
    assert.equal(issued.status, 200, issued.body);
    admin = (JSON.parse(issued.body) as { access_token: string }).access_token;
    assert.equal((await adminJson('POST', '/resource-servers', { identifier: API, name: 'API', scopes: ['api:read'] })).status, 201);

    const base = { grant_types: ['client_credentials'], allowed_resources: [API] };
    const clients: Record<string, Record<string, unknown>> = {
      dn: { client_name: 'DN', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'cn=Orders Service, ou=orders+ou=payments, o=Example\\, Inc., c=US', tls_client_certificate_bound_access_tokens: true },
      uri: { client_name: 'URI', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: 'spiffe://example.test/orders' },
      self: {
        client_name: 'Self-signed',
        token_endpoint_auth_method: 'self_signed_tls_client_auth',
        jwks: { keys: [{ ...(await exportJWK(await importX509(selfSigned.pem, 'ES256', { extractable: true }))), x5c: [selfSigned.certificate.raw.toString('base64')] }] },
        tls_client_certificate_bound_access_tokens: true,
      },
    };
    for (const [name, body] of Object.entries(clients)) {
      const created = await adminJson('POST', '/clients', { ...base, ...body });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body['client_secret'], undefined, 'certificate clients get no secret');
      ids[name] = created.body['client_id'] as string;
    }
  });
  after(async () => {
    await server?.close();
    await pki?.close();
  });

  test('HTTPS only, TLS 1.2 or later; discovery advertises certificate-bound tokens', async () => {
    assert.ok(server.url.startsWith('https://'));
    const discovery = JSON.parse((await call('/.well-known/openid-configuration', {})).body) as Record<string, unknown>;
    assert.equal(discovery['tls_client_certificate_bound_access_tokens'], true);
    assert.deepEqual(
      (discovery['token_endpoint_auth_methods_supported'] as string[]).filter((m) => m.includes('tls')).sort(),
      ['self_signed_tls_client_auth', 'tls_client_auth'],
    );
    // RFC 8705 §5: the certificate is asked for on the one listener, so each alias is the endpoint.
    const aliases = discovery['mtls_endpoint_aliases'] as Record<string, string>;
    for (const name of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint', 'userinfo_endpoint']) {
      assert.equal(aliases[name], discovery[name], name);
    }
    const old = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: Number(new URL(server.url).port), ca: pki.ca.pem, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
      socket.once('secureConnect', () => resolve('connected'));
      socket.once('error', (error: Error) => resolve(error.message));
    });
    assert.notEqual(old, 'connected', 'TLS 1.1 is refused');
  });

  test('tls_client_auth by subject DN (compared as a DN): a bound token; no, a foreign-CA or an unregistered certificate is invalid_client', async () => {
    const answer = await token(ids['dn']!, orders);
    assert.equal(answer.status, 200, answer.body);
    const body = JSON.parse(answer.body) as { access_token: string; token_type: string };
    assert.equal(body.token_type, 'Bearer');
    assert.deepEqual(decodeJwt(body.access_token).payload['cnf'], { 'x5t#S256': thumbprint(orders.certificate) });
    for (const cert of [undefined, rogue, ordersSpiffe, selfSigned]) {
      const refused = await token(ids['dn']!, cert);
      assert.equal(refused.status, 401, `${cert?.certificate.subject ?? 'no certificate'}: ${refused.body}`);
      assert.equal((JSON.parse(refused.body) as { error: string }).error, 'invalid_client');
    }
  });

  test('tls_client_auth by URI SAN (a SPIFFE ID), unbound unless asked', async () => {
    const answer = await token(ids['uri']!, ordersSpiffe);
    assert.equal(answer.status, 200, answer.body);
    assert.equal(decodeJwt((JSON.parse(answer.body) as { access_token: string }).access_token).payload['cnf'], undefined);
    assert.equal((await token(ids['uri']!, rogue)).status, 401);
  });

  test('self_signed_tls_client_auth: the registered x5c only; introspection keeps the binding', async () => {
    const answer = await token(ids['self']!, selfSigned);
    assert.equal(answer.status, 200, answer.body);
    const accessToken = (JSON.parse(answer.body) as { access_token: string }).access_token;
    assert.equal((await token(ids['self']!, orders)).status, 401, 'a CA-issued certificate is not the registered one');
    const other = await pki.selfSigned('self-2', '/CN=self-signed service');
    assert.equal((await token(ids['self']!, other)).status, 401, 'the same subject, another key');
    const introspected = await call('/token/introspection', { cert: selfSigned, form: { client_id: ids['self']!, token: accessToken } });
    const result = JSON.parse(introspected.body) as Record<string, unknown>;
    assert.equal(result['active'], true, introspected.body);
    assert.deepEqual(result['cnf'], { 'x5t#S256': thumbprint(selfSigned.certificate) });
    assert.equal(result['token_type'], 'Bearer');
  });

  test('a renewed server certificate is served after reload; an open connection keeps going', async () => {
    const port = Number(new URL(server.url).port);
    const peerSerial = () =>
      new Promise<{ serial: string; socket: ReturnType<typeof connect> }>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: pki.ca.pem }, () => resolve({ serial: socket.getPeerX509Certificate()!.serialNumber, socket }));
        socket.once('error', reject);
      });
    const before = await peerSerial();
    assert.equal(before.serial, serverCert.certificate.serialNumber);
    const renewed = await pki.issue('server-renewed', '/CN=127.0.0.1', { san: 'IP:127.0.0.1' });
    await copyFile(renewed.certFile, serverCert.certFile);
    await copyFile(renewed.keyFile, serverCert.keyFile);
    await server.running.reloadTls();
    const afterReload = await peerSerial();
    assert.equal(afterReload.serial, renewed.certificate.serialNumber);
    assert.equal(before.socket.destroyed, false, 'the connection opened before the reload is still open');
    // The old connection still carries requests.
    const answer = await new Promise<string>((resolve) => {
      let data = '';
      before.socket.on('data', (chunk: Buffer) => {
        data += chunk.toString();
        if (data.includes('\r\n\r\n')) resolve(data.split('\r\n')[0]!);
      });
      before.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    });
    assert.match(answer, /^HTTP\/1\.1 (200|404)/);
    before.socket.destroy();
    afterReload.socket.destroy();
    // A reload that cannot read its files keeps the loaded ones.
    await copyFile(pki.ca.keyFile, serverCert.certFile);
    await assert.rejects(server.running.reloadTls());
    assert.equal((await peerSerial().then((r) => (r.socket.destroy(), r.serial))), renewed.certificate.serialNumber);
    await copyFile(renewed.certFile, serverCert.certFile);
    assert.ok((await readFile(serverCert.certFile, 'utf8')).includes('BEGIN CERTIFICATE'));
  });
});
