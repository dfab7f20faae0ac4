import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Certificates made with Debian's `openssl`, as an operator would (SPEC §8 tests): a CA, server
 * and client certificates it issues, and self-signed ones. Keys are P-256.
 */
export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly pem: string;
  readonly certificate: X509Certificate;
}

export interface Pki {
  readonly dir: string;
  readonly ca: Issued;
  /** A certificate `issuer` signs (the CA by default); `san` like `DNS:x,URI:spiffe://…`. */
  issue(name: string, subject: string, options?: { san?: string; issuer?: Issued; days?: number; ca?: boolean }): Promise<Issued>;
  selfSigned(name: string, subject: string): Promise<Issued>;
  close(): Promise<void>;
}

async function issued(dir: string, name: string): Promise<Issued> {
  const certFile = path.join(dir, `${name}.pem`);
  const pem = await readFile(certFile, 'utf8');
  return { certFile, keyFile: path.join(dir, `${name}.key`), pem, certificate: new X509Certificate(pem) };
}

export async function createPki(): Promise<Pki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-pki-'));
  const key = (name: string) => run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path.join(dir, `${name}.key`)]);
  const selfSigned = async (name: string, subject: string, extensions: string[]) => {
    await key(name);
    await run('openssl', ['req', '-x509', '-new', '-key', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.pem`), '-days', '2', '-subj', subject, '-multivalue-rdn', ...extensions.flatMap((e) => ['-addext', e])]);
    return issued(dir, name);
  };
  const ca = await selfSigned('ca', '/CN=Gatehouse Test CA', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']);
  return {
    dir,
    ca,
    async issue(name, subject, options = {}) {
      const issuer = options.issuer ?? ca;
      await key(name);
      const csr = path.join(dir, `${name}.csr`);
      await run('openssl', ['req', '-new', '-key', path.join(dir, `${name}.key`), '-out', csr, '-subj', subject, '-multivalue-rdn']);
      const ext = path.join(dir, `${name}.ext`);
      await writeFile(ext, [options.ca === true ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign' : 'basicConstraints=CA:FALSE', ...(options.san === undefined ? [] : [`subjectAltName=${options.san}`])].join('\n') + '\n');
      // A random serial per certificate: -CAcreateserial shares one serial file, which concurrent issues corrupt.
      const serial = `0x${randomBytes(16).toString('hex')}`;
      await run('openssl', ['x509', '-req', '-in', csr, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial', serial, '-out', path.join(dir, `${name}.pem`), '-days', String(options.days ?? 1), '-extfile', ext]);
      return issued(dir, name);
    },
    selfSigned: (name, subject) => selfSigned(name, subject, ['basicConstraints=CA:FALSE']),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface CurlAnswer {
  readonly status: number;
  readonly body: string;
}

/** `curl` over TLS with the test CA, optionally presenting a client certificate. */
export async function curl(
  url: string,
  options: { ca: string; cert?: Issued; form?: Record<string, string>; json?: unknown; method?: string; basic?: readonly [string, string]; headers?: Record<string, string> },
): Promise<CurlAnswer> {
  const args = ['-sS', '--cacert', options.ca, '-o', '-', '-w', '\n%{http_code}', url];
  if (options.method !== undefined) args.push('-X', options.method);
  if (options.json !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(options.json));
  if (options.cert !== undefined) args.push('--cert', options.cert.certFile, '--key', options.cert.keyFile);
  if (options.basic !== undefined) args.push('-u', `${options.basic[0]}:${options.basic[1]}`);
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  for (const [name, value] of Object.entries(options.form ?? {})) args.push('--data-urlencode', `${name}=${value}`);
  const { stdout } = await run('curl', args, { maxBuffer: 1 << 20 });
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}
