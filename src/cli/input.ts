import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError } from './command.js';

/** `--scope "a b" --scope c` → ["a", "b", "c"]: repeated flags and space-separated lists both work. */
export function splitScopes(values: readonly string[]): string[] {
  return values.flatMap((value) => value.split(/\s+/)).filter((scope) => scope !== '');
}

/** A whole number as a number; anything else as given, for the schema to explain what is wrong. */
export function integerOrText(value: string): number | string {
  return /^-?\d{1,15}$/.test(value.trim()) ? Number(value.trim()) : value;
}

/** A JSON document from a file a flag names; a file that cannot be read or parsed is a usage error. */
export async function readJsonFile(flag: string, path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${flag}: ${path} is not valid JSON`);
  }
}

/**
 * RFC 8705 §2.2 `self_signed_tls_client_auth`: a certificate file (PEM or DER) as the public JWK
 * the client's `jwks` registers, with the certificate itself in `x5c` (RFC 7517 §4.7: base64 DER,
 * not base64url), which is what the provider compares a presented certificate against. Node's own
 * parser reads the key, so no signing algorithm has to be guessed for it. One certificate per
 * file: a bundle would register only its first one, silently.
 */
export async function readCertificateJwk(flag: string, path: string): Promise<Record<string, unknown>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const pemBlocks = bytes.toString('latin1').match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  if (pemBlocks > 1) throw new UsageError(`${flag}: ${path} holds ${pemBlocks} certificates; give one file per certificate`);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(bytes);
  } catch {
    throw new UsageError(`${flag}: ${path} is not an X.509 certificate (PEM or DER)`);
  }
  let jwk: Record<string, unknown>;
  try {
    jwk = certificate.publicKey.export({ format: 'jwk' });
  } catch {
    // e.g. an RSASSA-PSS key, which JWK has no way to write.
    throw new UsageError(`${flag}: ${path}: its ${certificate.publicKey.asymmetricKeyType ?? 'unknown'} key cannot be written as a JWK`);
  }
  return { ...jwk, x5c: [certificate.raw.toString('base64')] };
}

/** Sets `body[field]` only when the flag was given, so the schema's defaults apply otherwise. */
export function given<T>(body: Record<string, unknown>, field: string, value: T | undefined, when: (value: T) => boolean = () => true): void {
  if (value !== undefined && when(value)) body[field] = value;
}
