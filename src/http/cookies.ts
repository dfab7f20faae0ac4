import { timingSafeEqual } from 'node:crypto';

/** Constant-time string equality. */
export function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * The values of the named cookies in a Cookie header (RFC 6265 §5.4). Read here rather than
 * through Koa's jar, which expects its own signature on every cookie once app.keys is set.
 */
export function cookieValues(header: string | undefined, names: readonly string[]): string[] {
  if (header === undefined || header.length > 8_192) return [];
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && names.includes(pair.slice(0, eq).trim())) values.push(pair.slice(eq + 1).trim());
  }
  return values;
}
