import type { X509Certificate } from 'node:crypto';

/**
 * RFC 8705 §2.1.2 `tls_client_auth`: does the client certificate match the registered subject?
 *
 * - `tls_client_auth_subject_dn`: compared as distinguished names (RFC 4514 strings, RFC 4517
 *   caseIgnoreMatch on values), never as text: `CN=Orders,O=Example` matches a certificate whose
 *   subject Node prints as `O=Example\nCN=Orders`, whatever the spacing, case or escaping.
 *   The npm packages that parse RFC 4514 strings are unmaintained (ldapjs) or need a global
 *   reflect polyfill (@peculiar/x509), so the grammar's small core lives here: RDNs separated by
 *   `,`, multi-valued RDNs by `+`, `\`-escapes of specials and `\hh` hex pairs. `#`-hex (BER)
 *   values are refused, not guessed.
 * - `tls_client_auth_san_dns` / `_ip` / `_email`: Node's own checks against the subjectAltName
 *   (no subject fallback). `_uri`: an exact URI entry of the subjectAltName.
 */

type Attribute = readonly [type: string, value: string];
type Rdn = readonly Attribute[];

/** Attribute type names, and the OIDs RFC 4514 §3 lets a DN string use instead. */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.5': 'SERIALNUMBER',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
  '1.2.840.113549.1.9.1': 'EMAILADDRESS',
  S: 'ST',
  E: 'EMAILADDRESS',
};

function normaliseType(type: string): string {
  const upper = type.trim().toUpperCase();
  return TYPE_ALIASES[upper] ?? TYPE_ALIASES[type.trim()] ?? upper;
}

/** RFC 4517 caseIgnoreMatch, as LDAP servers prepare strings: outer space dropped, inner runs one space, case folded. */
function normaliseValue(value: string): string {
  return value.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
}

/** Splits on an unescaped separator (escapes kept for the value parser). */
function splitUnescaped(text: string, separator: string): string[] | undefined {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i]!;
    if (char === '\\') {
      if (i + 1 >= text.length) return undefined;
      current += char + text[i + 1]!;
      i += 1;
    } else if (text.startsWith(separator, i)) {
      parts.push(current);
      current = '';
      i += separator.length - 1;
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

/** An attribute value with its RFC 4514 §2.4 escapes undone. */
function unescapeValue(raw: string): string | undefined {
  if (raw.trim().startsWith('#')) return undefined;
  const bytes: number[] = [];
  const text = Buffer.from(raw, 'utf8');
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] !== 0x5c) {
      bytes.push(text[i]!);
      continue;
    }
    const pair = text.subarray(i + 1, i + 3).toString('latin1');
    if (/^[0-9a-fA-F]{2}$/.test(pair)) {
      bytes.push(Number.parseInt(pair, 16));
      i += 2;
    } else if (i + 1 < text.length) {
      bytes.push(text[i + 1]!);
      i += 1;
    } else {
      return undefined;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function parseRdn(text: string, separator: string): Rdn | undefined {
  const attributes = splitUnescaped(text, separator);
  if (attributes === undefined) return undefined;
  const parsed: Attribute[] = [];
  for (const attribute of attributes) {
    const eq = attribute.indexOf('=');
    if (eq <= 0) return undefined;
    const value = unescapeValue(attribute.slice(eq + 1));
    if (value === undefined) return undefined;
    parsed.push([normaliseType(attribute.slice(0, eq)), normaliseValue(value)]);
  }
  return parsed;
}

/** An RFC 4514 string as RDNs in certificate (DER) order: the string lists the last RDN first. */
export function parseDistinguishedName(dn: string): Rdn[] | undefined {
  if (dn.trim() === '') return undefined;
  const rdns = splitUnescaped(dn, ',');
  if (rdns === undefined) return undefined;
  const parsed: Rdn[] = [];
  for (const rdn of rdns) {
    const attributes = parseRdn(rdn.trim(), '+');
    if (attributes === undefined) return undefined;
    parsed.push(attributes);
  }
  return parsed.reverse();
}

/** Node's `X509Certificate#subject`: one RDN a line in DER order, ` + ` between the values of one. */
function certificateSubject(certificate: X509Certificate): Rdn[] | undefined {
  const rdns: Rdn[] = [];
  for (const line of certificate.subject.split('\n')) {
    const attributes = parseRdn(line, ' + ');
    if (attributes === undefined) return undefined;
    rdns.push(attributes);
  }
  return rdns;
}

function sameRdn(a: Rdn, b: Rdn): boolean {
  const key = (attribute: Attribute) => `${attribute[0]}=${attribute[1]}`;
  const left = a.map(key).sort();
  const right = b.map(key).sort();
  return left.length === right.length && left.every((value, i) => value === right[i]);
}

export function subjectDnMatches(certificate: X509Certificate, expected: string): boolean {
  const want = parseDistinguishedName(expected);
  const have = certificateSubject(certificate);
  if (want === undefined || have === undefined || want.length !== have.length) return false;
  return want.every((rdn, i) => sameRdn(rdn, have[i]!));
}

function sanUris(certificate: X509Certificate): string[] {
  // Node lists `URI:<value>` entries, comma-separated, with quoting for odd ones.
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

export function certificateSubjectMatches(certificate: X509Certificate, property: string, expected: string): boolean {
  switch (property) {
    case 'tls_client_auth_subject_dn':
      return subjectDnMatches(certificate, expected);
    case 'tls_client_auth_san_dns':
      return certificate.checkHost(expected, { subject: 'never', wildcards: false }) !== undefined;
    case 'tls_client_auth_san_ip':
      return certificate.checkIP(expected) !== undefined;
    case 'tls_client_auth_san_email':
      return certificate.checkEmail(expected, { subject: 'never' }) !== undefined;
    case 'tls_client_auth_san_uri':
      return sanUris(certificate).includes(expected);
    default:
      return false;
  }
}
