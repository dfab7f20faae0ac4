import {
  constants,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

/**
 * Compact JWE encryption to a resource server's public key, built on node:crypto directly.
 *
 * Why not jose: its WebCrypto path costs ~980 µs per ECDH-ES token against ~210 µs here
 * (measured on our machines; bench/README.md has the token figures), and the inner layer is on every token's path. Everything here is standard
 * RFC 7516/7518 and is proven in tests by decrypting the output with jose for every algorithm.
 *
 * - ECDH-ES+A256KW (RFC 7518 §4.6) for EC P-256/P-384/P-521 and OKP X25519 keys;
 * - RSA-OAEP-256 (RFC 7518 §4.3) for RSA keys;
 * - content encryption A256GCM (RFC 7518 §5.3).
 */

export type KeyManagementAlg = 'ECDH-ES+A256KW' | 'RSA-OAEP-256';

export class JweKeyError extends Error {
  readonly code = 'jwe_key_unsupported' as const;

  constructor(message: string) {
    super(message);
    this.name = 'JweKeyError';
  }
}

/** A recipient key imported once and reused for every token (SPEC §3). */
export interface JweRecipient {
  readonly alg: KeyManagementAlg;
  readonly kid: string | undefined;
  /** The JWK it was imported from, as JSON: a worker thread imports the same key from it. */
  readonly source: string;
  /**
   * Encrypts `plaintext` into a compact JWE; `extraHeader` goes into the protected header.
   * With `escrowKey`, the content key is also wrapped to that key in the `gatehouse_ek` header
   * parameter, so Gatehouse itself can read the token again (introspection of whole-token
   * encrypted tokens). RFC 7516 §4: recipients ignore header parameters they don't know.
   */
  encrypt(plaintext: Buffer | string, extraHeader?: Record<string, string>, escrowKey?: Buffer): string;
}

type ImportedKey = Omit<JweRecipient, 'source'>;

/** The protected-header parameter that carries the escrowed content key. */
export const ESCROW_HEADER = 'gatehouse_ek';

const EC_CURVES: Record<string, { openssl: string; size: number }> = {
  'P-256': { openssl: 'prime256v1', size: 32 },
  'P-384': { openssl: 'secp384r1', size: 48 },
  'P-521': { openssl: 'secp521r1', size: 66 },
};

const b64u = (value: Buffer | string) => Buffer.from(value).toString('base64url');

function lengthPrefixed(value: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(value.length);
  return Buffer.concat([length, value]);
}

/** NIST SP 800-56A Concat KDF with SHA-256, as RFC 7518 §4.6.2 specifies, for a 256-bit key. */
function concatKdf(sharedSecret: Buffer, alg: string): Buffer {
  const otherInfo = Buffer.concat([
    lengthPrefixed(Buffer.from(alg, 'ascii')),
    lengthPrefixed(Buffer.alloc(0)), // PartyUInfo (apu absent)
    lengthPrefixed(Buffer.alloc(0)), // PartyVInfo (apv absent)
    Buffer.from([0, 0, 1, 0]), // SuppPubInfo: key length in bits (256)
  ]);
  // One round suffices: SHA-256 yields exactly the 256 bits A256KW needs.
  return createHash('sha256').update(Buffer.from([0, 0, 0, 1])).update(sharedSecret).update(otherInfo).digest();
}

/** RFC 3394 AES key wrap with the default IV (node's id-aes256-wrap). */
function aesKeyWrap(kek: Buffer, cek: Buffer): Buffer {
  const cipher = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
  return Buffer.concat([cipher.update(cek), cipher.final()]);
}

function aesKeyUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const decipher = createDecipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

function sealCompact(
  protectedHeader: Record<string, unknown>,
  encryptedKey: Buffer,
  cek: Buffer,
  plaintext: Buffer | string,
  escrowKey: Buffer | undefined,
): string {
  const header = escrowKey === undefined ? protectedHeader : { ...protectedHeader, [ESCROW_HEADER]: b64u(aesKeyWrap(escrowKey, cek)) };
  const encodedHeader = b64u(JSON.stringify(header));
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', cek, iv);
  // RFC 7516 §5.1 step 14: the AAD is the ASCII of the encoded protected header.
  cipher.setAAD(Buffer.from(encodedHeader, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return [encodedHeader, b64u(encryptedKey), b64u(iv), b64u(ciphertext), b64u(cipher.getAuthTag())].join('.');
}

function ecRecipient(jwk: JsonWebKey, kid: string | undefined): ImportedKey {
  const curve = EC_CURVES[jwk.crv ?? ''];
  if (curve === undefined || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new JweKeyError('EC keys must be P-256, P-384 or P-521 with x and y');
  }
  // Validates the point is on the curve before any token is encrypted to it.
  createPublicKey({ key: jwk, format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  const alg = 'ECDH-ES+A256KW';
  return {
    alg,
    kid,
    encrypt(plaintext, extraHeader = {}, escrowKey) {
      const ephemeral = createECDH(curve.openssl);
      const ephemeralPublic = ephemeral.generateKeys();
      const shared = ephemeral.computeSecret(point);
      const epk = {
        kty: 'EC',
        crv: jwk.crv,
        x: b64u(ephemeralPublic.subarray(1, 1 + curve.size)),
        y: b64u(ephemeralPublic.subarray(1 + curve.size)),
      };
      const cek = randomBytes(32);
      const header = { alg, enc: 'A256GCM', ...(kid === undefined ? {} : { kid }), epk, ...extraHeader };
      return sealCompact(header, aesKeyWrap(concatKdf(shared, alg), cek), cek, plaintext, escrowKey);
    },
  };
}

function x25519Recipient(jwk: JsonWebKey, kid: string | undefined): ImportedKey {
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
  // RFC 7748 §6.1: a low-order point yields an all-zero secret, which OpenSSL refuses; refuse the
  // key now rather than fail every token encrypted to it.
  diffieHellman({ privateKey: generateKeyPairSync('x25519').privateKey, publicKey });
  const alg = 'ECDH-ES+A256KW';
  return {
    alg,
    kid,
    encrypt(plaintext, extraHeader = {}, escrowKey) {
      const ephemeral = generateKeyPairSync('x25519');
      const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey });
      const { x } = ephemeral.publicKey.export({ format: 'jwk' });
      const cek = randomBytes(32);
      const header = { alg, enc: 'A256GCM', ...(kid === undefined ? {} : { kid }), epk: { kty: 'OKP', crv: 'X25519', x }, ...extraHeader };
      return sealCompact(header, aesKeyWrap(concatKdf(shared, alg), cek), cek, plaintext, escrowKey);
    },
  };
}

function rsaRecipient(jwk: JsonWebKey, kid: string | undefined): ImportedKey {
  const publicKey: KeyObject = createPublicKey({ key: jwk, format: 'jwk' });
  if ((publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new JweKeyError('RSA keys must be at least 2048 bits');
  const alg = 'RSA-OAEP-256';
  return {
    alg,
    kid,
    encrypt(plaintext, extraHeader = {}, escrowKey) {
      const cek = randomBytes(32);
      const encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
      const header = { alg, enc: 'A256GCM', ...(kid === undefined ? {} : { kid }), ...extraHeader };
      return sealCompact(header, encryptedKey, cek, plaintext, escrowKey);
    },
  };
}

/** Private JWK members that must never be accepted where a public key is expected. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** Imports a public encryption JWK; throws JweKeyError for anything SPEC §3 does not allow. */
export function importRecipient(jwk: JsonWebKey & { kid?: string; use?: string; alg?: string }): JweRecipient {
  if (PRIVATE_JWK_MEMBERS.some((member) => (jwk as Record<string, unknown>)[member] !== undefined)) {
    throw new JweKeyError('the key must be a public JWK (it contains private members)');
  }
  if (jwk.use !== undefined && jwk.use !== 'enc') throw new JweKeyError('the key must be for encryption (use "enc")');
  const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
  let recipient: ImportedKey;
  try {
    if (jwk.kty === 'EC') recipient = ecRecipient(jwk, kid);
    else if (jwk.kty === 'OKP' && jwk.crv === 'X25519') recipient = x25519Recipient(jwk, kid);
    else if (jwk.kty === 'RSA') recipient = rsaRecipient(jwk, kid);
    else throw new JweKeyError('the key must be EC (P-256, P-384, P-521), OKP X25519 or RSA');
  } catch (error) {
    if (error instanceof JweKeyError) throw error;
    throw new JweKeyError(`the key is not a valid public JWK: ${(error as Error).message}`);
  }
  if (jwk.alg !== undefined && jwk.alg !== recipient.alg) throw new JweKeyError(`a ${String(jwk.kty)} key is used with ${recipient.alg}, not ${jwk.alg}`);
  return { ...recipient, source: JSON.stringify(jwk) };
}

/**
 * Opens a compact JWE that Gatehouse encrypted with `escrowKey` (see JweRecipient.encrypt).
 * Returns undefined for anything else: not a JWE, no escrowed key, or failed authentication.
 */
export function openEscrowed(compact: string, escrowKey: Buffer): Buffer | undefined {
  const parts = compact.split('.');
  if (parts.length !== 5) return undefined;
  const [encodedHeader, , iv, ciphertext, tag] = parts as [string, string, string, string, string];
  try {
    const header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8')) as Record<string, unknown>;
    const escrowed = header[ESCROW_HEADER];
    if (typeof escrowed !== 'string' || header['enc'] !== 'A256GCM') return undefined;
    const cek = aesKeyUnwrap(escrowKey, Buffer.from(escrowed, 'base64url'));
    const decipher = createDecipheriv('aes-256-gcm', cek, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(encodedHeader, 'ascii'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
  } catch {
    return undefined;
  }
}
