import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, type X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, importX509 } from 'jose';
import { adminCall, adminToken, decodeJwt } from '../support/admin-api.js';
import { nginxArgs, privateNginxConfig } from '../support/nginx.js';
import { commandAvailable } from '../support/gateway.js';
import { createPki, curl, type Issued, type Pki } from '../support/pki.js';
import { REPO_ROOT } from '../support/process.js';
import { freePort, startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §8 behind a TLS-terminating proxy, with the real parts: Debian's nginx and HAProxy run the
 * repository's own deploy/nginx-mtls.conf and deploy/haproxy-mtls.cfg (ports and paths
 * substituted) in front of Gatehouse on plain HTTP (TRUST_PROXY, CLIENT_CERT_HEADER,
 * TLS_CLIENT_CA_FILE, ISSUER the proxy's https origin). With openssl-made certificates and curl:
 * tls_client_auth gets a token bound to the certificate the client presented to the proxy, kept
 * by introspection; no certificate or another CA's is invalid_client; a self-signed
 * self_signed_tls_client_auth certificate gets through the proxy to be matched by Gatehouse; and
 * the threat the header brings, a client naming a certificate it does not hold by sending the
 * header itself, is stopped by the proxy, which replaces or drops it.
 */

const toolsAvailable = (await commandAvailable('curl', ['--version'])) && (await commandAvailable('openssl', ['version']));
const nginxAvailable = toolsAvailable && (await commandAvailable('nginx', ['-v']));
const haproxyAvailable = toolsAvailable && (await commandAvailable('haproxy', ['-v']));

const API = 'https://api.mtls-proxy.test';

const thumbprint = (certificate: X509Certificate) => createHash('sha256').update(certificate.raw).digest('base64url');

/** The shipped file with each placeholder replaced; a placeholder that is not there fails the test. */
async function shipped(file: string, replacements: readonly (readonly [string, string])[]): Promise<string> {
  let text = await readFile(path.join(REPO_ROOT, file), 'utf8');
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `${file} no longer contains ${JSON.stringify(from)}`);
    text = text.replaceAll(from, to);
  }
  return text;
}

/** A form POST over plain HTTP with headers that may repeat (fetch would join them into one line). */
function postForm(url: string, headers: Record<string, string | string[]>, form: Record<string, string>): Promise<{ status: number; body: string }> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface ProxyStart {
  readonly pki: Pki;
  readonly serverCert: Issued;
  /** The proxy's listen port (ISSUER's). */
  readonly port: number;
  /** Gatehouse's plain-HTTP host:port. */
  readonly upstream: string;
}

interface ProxyDoor {
  readonly title: string;
  readonly skip: false | string;
  /** CLIENT_CERT_HEADER. */
  readonly header: string;
  /** The header value this proxy writes for a certificate (what a forger would send). */
  readonly encode: (certificate: Issued) => string;
  /** Writes the private instance's files into pki.dir; returns the command line to run it in the foreground. */
  readonly configure: (start: ProxyStart) => Promise<readonly [string, string[]]>;
  readonly stopSignal: NodeJS.Signals;
}

function mtlsBehindProxy(door: ProxyDoor): void {
  describe(door.title, { skip: door.skip }, () => {
    let pki: Pki;
    let server: TestServer;
    let proxy: ChildProcess | undefined;
    let proxyLog = '';
    let issuer: string;
    let orders: Issued;
    let rogue: Issued;
    let selfSigned: Issued;
    const ids: Record<string, string> = {};

    const viaProxy = (pathname: string, options: Omit<Parameters<typeof curl>[1], 'ca'>) => curl(`${issuer}${pathname}`, { ca: pki.ca.certFile, ...options });
    const token = (clientId: string, options: { cert?: Issued; headers?: Record<string, string> } = {}) =>
      viaProxy('/token', { ...options, form: { grant_type: 'client_credentials', client_id: clientId, resource: API, scope: 'api:read' } });
    const assertInvalidClient = (answer: { status: number; body: string }, why: string) => {
      assert.equal(answer.status, 401, `${why}: ${answer.body}`);
      assert.equal((JSON.parse(answer.body) as { error: string }).error, 'invalid_client', why);
    };

    before(async () => {
      pki = await createPki();
      const serverCert = await pki.issue('server', '/CN=127.0.0.1', { san: 'IP:127.0.0.1,DNS:localhost' });
      orders = await pki.issue('orders', '/O=Example/CN=orders service');
      const rogueCa = await pki.selfSigned('rogue-ca', '/CN=Rogue CA');
      rogue = await pki.issue('rogue', '/O=Example/CN=orders service', { issuer: rogueCa });
      selfSigned = await pki.selfSigned('self', '/CN=self-signed service');

      const port = await freePort();
      issuer = `https://127.0.0.1:${port}`;
      // Plain HTTP on loopback; every URL it advertises is the proxy's origin.
      server = await startTestServer({ env: { ISSUER: issuer, TRUST_PROXY: 'true', CLIENT_CERT_HEADER: door.header, TLS_CLIENT_CA_FILE: pki.ca.certFile } });

      const [command, args] = await door.configure({ pki, serverCert, port, upstream: new URL(server.url).host });
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      proxy = child;
      child.stdout?.on('data', (chunk: Buffer) => (proxyLog += chunk.toString('utf8')));
      child.stderr?.on('data', (chunk: Buffer) => (proxyLog += chunk.toString('utf8')));
      await waitFor(async () => child.exitCode === null && (await viaProxy('/healthz', {})).status === 200, 30_000, 100).catch(() => {
        throw new Error(`${command} did not serve https on ${issuer}:\n${proxyLog}`);
      });

      const admin = await adminToken(server, 'admin:clients admin:resource-servers');
      assert.equal((await adminCall(server, 'POST', '/resource-servers', { identifier: API, name: 'API', scopes: ['api:read'] }, admin)).status, 201);
      const base = { grant_types: ['client_credentials'], allowed_resources: [API], tls_client_certificate_bound_access_tokens: true };
      const clients: Record<string, Record<string, unknown>> = {
        dn: { client_name: 'DN', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=orders service,O=Example' },
        self: {
          client_name: 'Self-signed',
          token_endpoint_auth_method: 'self_signed_tls_client_auth',
          jwks: { keys: [{ ...(await exportJWK(await importX509(selfSigned.pem, 'ES256', { extractable: true }))), x5c: [selfSigned.certificate.raw.toString('base64')] }] },
        },
      };
      for (const [name, body] of Object.entries(clients)) {
        const created = await adminCall(server, 'POST', '/clients', { ...base, ...body }, admin);
        assert.equal(created.status, 201, JSON.stringify(created.body));
        ids[name] = created.body['client_id'] as string;
      }
    });
    after(async () => {
      if (proxy !== undefined && proxy.exitCode === null && proxy.signalCode === null) {
        const exited = once(proxy, 'exit');
        proxy.kill(door.stopSignal);
        await exited;
      }
      await server?.close();
      await pki?.close();
    });

    test('discovery through the proxy: every endpoint on the https issuer, certificate-bound tokens advertised', async () => {
      const discovery = JSON.parse((await viaProxy('/.well-known/openid-configuration', {})).body) as Record<string, unknown>;
      assert.equal(discovery['issuer'], issuer);
      assert.equal(discovery['token_endpoint'], `${issuer}/token`);
      assert.equal(discovery['introspection_endpoint'], `${issuer}/token/introspection`);
      assert.equal(discovery['tls_client_certificate_bound_access_tokens'], true);
    });

    test('tls_client_auth: the certificate presented to the proxy authenticates and binds the token (cnf.x5t#S256); introspection keeps it', async () => {
      const answer = await token(ids['dn']!, { cert: orders });
      assert.equal(answer.status, 200, answer.body);
      const accessToken = (JSON.parse(answer.body) as { access_token: string }).access_token;
      const payload = decodeJwt(accessToken).payload;
      assert.deepEqual(payload['cnf'], { 'x5t#S256': thumbprint(orders.certificate) });
      assert.equal(payload['iss'], issuer);

      const introspected = await viaProxy('/token/introspection', { cert: orders, form: { client_id: ids['dn']!, token: accessToken } });
      assert.equal(introspected.status, 200, introspected.body);
      const result = JSON.parse(introspected.body) as Record<string, unknown>;
      assert.equal(result['active'], true, introspected.body);
      assert.deepEqual(result['cnf'], { 'x5t#S256': thumbprint(orders.certificate) });
      assert.equal(result['token_type'], 'Bearer');
    });

    test('no certificate, or one from another CA with the registered subject: invalid_client', async () => {
      assertInvalidClient(await token(ids['dn']!), 'no certificate');
      assertInvalidClient(await token(ids['dn']!, { cert: rogue }), 'a rogue CA');
    });

    test('self_signed_tls_client_auth: the proxy passes a certificate no CA issued, Gatehouse matches it to the registered x5c', async () => {
      const answer = await token(ids['self']!, { cert: selfSigned });
      assert.equal(answer.status, 200, answer.body);
      assert.deepEqual(decodeJwt((JSON.parse(answer.body) as { access_token: string }).access_token).payload['cnf'], { 'x5t#S256': thumbprint(selfSigned.certificate) });
      assertInvalidClient(await token(ids['self']!, { cert: orders }), 'not the registered certificate');
    });

    test(`a client-sent ${door.header} is never passed on: without a certificate, or with another one, the forged header does not authenticate`, async () => {
      // The control: the very header, sent straight to Gatehouse's own port (which only the proxy
      // may reach), is what authenticates. So the proxy is what stands between it and a client.
      const form = { grant_type: 'client_credentials', client_id: ids['dn']!, resource: API, scope: 'api:read' };
      const direct = await postForm(`${server.url}/token`, { [door.header]: door.encode(orders) }, form);
      assert.equal(direct.status, 200, direct.body);
      // A proxy that appended its header instead of replacing the client's: Gatehouse sees both
      // (Node joins them, `forged, real`) and trusts neither.
      assertInvalidClient(await postForm(`${server.url}/token`, { [door.header]: [door.encode(orders), door.encode(rogue)] }, form), 'the header twice');

      const forged = door.encode(orders);
      assertInvalidClient(await token(ids['dn']!, { headers: { [door.header]: forged } }), 'forged header, no certificate');
      assertInvalidClient(await token(ids['dn']!, { headers: { [door.header.toUpperCase()]: forged } }), 'forged header in upper case');
      assertInvalidClient(await token(ids['dn']!, { cert: rogue, headers: { [door.header]: forged } }), 'forged header beside a rogue certificate');
      assertInvalidClient(await token(ids['self']!, { cert: orders, headers: { [door.header]: door.encode(selfSigned) } }), 'forged header beside another certificate');
    });
  });
}

mtlsBehindProxy({
  title: 'mTLS behind nginx (deploy/nginx-mtls.conf, $ssl_client_escaped_cert)',
  skip: nginxAvailable ? false : 'needs nginx (nginx-light), curl and openssl (.ci/run installs them)',
  header: 'x-ssl-client-cert',
  // nginx's $ssl_client_escaped_cert: the PEM, URL-encoded.
  encode: (certificate) => encodeURIComponent(certificate.pem),
  async configure({ pki, serverCert, port, upstream }) {
    const dir = pki.dir;
    const site = await shipped('deploy/nginx-mtls.conf', [
      ['listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`],
      ['/etc/nginx/tls/gatehouse.pem', serverCert.certFile],
      ['/etc/nginx/tls/gatehouse.key', serverCert.keyFile],
    ]);
    await writeFile(path.join(dir, 'gatehouse-mtls.conf'), site);
    // A private instance: its own pid, logs and temp dirs.
    await writeFile(path.join(dir, 'nginx.conf'), privateNginxConfig(dir, [`upstream gatehouse { server ${upstream}; keepalive 4; }`, `include ${dir}/gatehouse-mtls.conf;`]));
    return ['nginx', nginxArgs(dir)];
  },
  stopSignal: 'SIGQUIT',
});

mtlsBehindProxy({
  title: 'mTLS behind HAProxy (deploy/haproxy-mtls.cfg, RFC 9440 Client-Cert)',
  skip: haproxyAvailable ? false : 'needs haproxy, curl and openssl (.ci/run installs them)',
  header: 'client-cert',
  // RFC 9440 §2.2: the DER as a Structured Field Byte Sequence.
  encode: (certificate) => `:${certificate.certificate.raw.toString('base64')}:`,
  async configure({ pki, serverCert, port, upstream }) {
    // HAProxy takes the certificate and its key from one file.
    const crt = path.join(pki.dir, 'haproxy-server.pem');
    await writeFile(crt, `${serverCert.pem}${await readFile(serverCert.keyFile, 'utf8')}`);
    const config = path.join(pki.dir, 'haproxy.cfg');
    await writeFile(
      config,
      await shipped('deploy/haproxy-mtls.cfg', [
        ['bind :443 ', `bind 127.0.0.1:${port} `],
        ['/etc/haproxy/tls/gatehouse.pem', crt],
        ['/etc/gatehouse/client-ca.pem', pki.ca.certFile],
        ['server gatehouse gatehouse:3000', `server gatehouse ${upstream}`],
      ]),
    );
    // -db: in the foreground, no daemon, no pid file.
    return ['haproxy', ['-db', '-f', config]];
  },
  // A hard stop: the test is over, nothing is in flight.
  stopSignal: 'SIGTERM',
});
