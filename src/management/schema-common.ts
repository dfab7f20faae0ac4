import { isIPv4 } from 'node:net';
import { z } from 'zod';

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
export const scopeToken = z
  .string()
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/, 'a scope is 1 to 128 printable characters without spaces, quotes or backslashes');

export function unique<T>(values: readonly T[]): boolean {
  return new Set(values).size === values.length;
}

/** An absolute URI without a fragment (RFC 8707 §2 for resource indicators). */
export const absoluteUri = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .refine((value) => URL.canParse(value) && new URL(value).hash === '' && !value.includes('#'), 'must be an absolute URI without a fragment')
  .meta({ format: 'uri', description: 'An absolute URI without a fragment.' });

/** `localhost`, `[::1]` or 127.0.0.0/8 (RFC 8252 §7.3). */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || (isIPv4(hostname) && hostname.startsWith('127.'));
}

/** Redirect URIs: absolute, https except loopback (RFC 8252 §7.3), no fragment (RFC 6749 §3.1.2). */
export const redirectUri = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .superRefine((value, ctx) => {
    if (!URL.canParse(value)) return ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
    const url = new URL(value);
    if (value.includes('#')) ctx.addIssue({ code: 'custom', message: 'must not contain a fragment' });
    if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && isLoopback(url.hostname)) return;
    ctx.addIssue({ code: 'custom', message: 'must use https (http is allowed only for loopback addresses)' });
  })
  .meta({ format: 'uri', description: 'An absolute https URL (http only for loopback addresses) without a fragment or credentials.' });

/** A JSON object standing for a JWK; its key material is checked by whoever imports it. */
export const jwkObject = z
  .record(z.string(), z.unknown())
  .refine((value) => typeof value['kty'] === 'string', 'must be a JWK with "kty"')
  .meta({ description: 'A JSON Web Key (RFC 7517) with at least "kty".' });
