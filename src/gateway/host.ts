/**
 * RFC 9110 §7.2 Host: a name or an IP literal with an optional port, and nothing else (no
 * userinfo, path or space). `value` is lower case already. Every door and the sign-in paths
 * read the protected host with this one check.
 */
export function isHostHeader(value: string): boolean {
  if (value.length > 255 || !/^[a-z0-9.:[\]-]+$/.test(value)) return false;
  try {
    return new URL(`http://${value}`).host === value.replace(/:80$/, '');
  } catch {
    return false;
  }
}
