import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { certificateFromHeader } from '../../src/http/client-certificate.js';
import { commandAvailable } from '../support/gateway.js';
import { createPki, type Issued, type Pki } from '../support/pki.js';

/**
 * SPEC §8 CLIENT_CERT_HEADER: the certificate a TLS-terminating proxy passes on, in each proxy's
 * form. A value that could hold a certificate the client added itself (a repeated header, an
 * appended XFCC element) yields no certificate at all.
 */

const opensslAvailable = await commandAvailable('openssl', ['version']);

describe('certificateFromHeader', { skip: opensslAvailable ? false : 'needs openssl' }, () => {
  let pki: Pki;
  let client: Issued;
  let forged: Issued;
  const der = (issued: Issued) => issued.certificate.raw.toString('base64');
  const escaped = (issued: Issued) => encodeURIComponent(issued.pem);
  const xfcc = (issued: Issued) => `By=spiffe://gatehouse;Hash=abc;Cert="${escaped(issued)}";Subject="CN=client, O=Example, Inc.";URI=spiffe://example/x`;

  before(async () => {
    pki = await createPki();
    [client, forged] = await Promise.all([pki.issue('client', '/CN=client'), pki.issue('forged', '/CN=forged')]);
  });
  after(async () => {
    await pki?.close();
  });

  test("nginx's $ssl_client_escaped_cert: one URL-encoded PEM; two (a header appended, not replaced) are none", () => {
    assert.equal(certificateFromHeader('x-ssl-client-cert', escaped(client))?.fingerprint256, client.certificate.fingerprint256);
    assert.equal(certificateFromHeader('x-ssl-client-cert', `${escaped(forged)}, ${escaped(client)}`), undefined);
    assert.equal(certificateFromHeader('x-ssl-client-cert', 'not%20a%20certificate'), undefined);
    assert.equal(certificateFromHeader('x-ssl-client-cert', '%E0%A4%A'), undefined);
  });

  test('RFC 9440 Client-Cert: a byte sequence of the DER; anything else is none', () => {
    assert.equal(certificateFromHeader('client-cert', `:${der(client)}:`)?.fingerprint256, client.certificate.fingerprint256);
    assert.equal(certificateFromHeader('client-cert', der(client)), undefined);
    assert.equal(certificateFromHeader('client-cert', `:${der(forged)}:, :${der(client)}:`), undefined);
  });

  test("Envoy's x-forwarded-client-cert: the Cert of its one element, commas in quoted values included; appended elements are none", () => {
    assert.equal(certificateFromHeader('x-forwarded-client-cert', xfcc(client))?.fingerprint256, client.certificate.fingerprint256);
    assert.equal(certificateFromHeader('x-forwarded-client-cert', `${xfcc(forged)},${xfcc(client)}`), undefined);
    assert.equal(certificateFromHeader('x-forwarded-client-cert', 'By=spiffe://gatehouse;Hash=abc'), undefined);
  });

  test('an oversized value is none', () => {
    assert.equal(certificateFromHeader('x-ssl-client-cert', 'A'.repeat(20_000)), undefined);
  });
});
