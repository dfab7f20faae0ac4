import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { BoundedCache } from '../lib/bounded-cache.js';

/**
 * What oidc-provider fetches with (its `fetch` option): in practice a client's `jwks_uri`
 * (SPEC §2: "fetched with a timeout, a size limit and a cache (failures cached too), never on a
 * private address unless ALLOW_PRIVATE_JWKS_URI").
 *
 * oidc-provider's own guard destroys a socket to a special-use address only once it has connected
 * (a blind port probe still reaches the target) and has no switch for development set-ups; this
 * one refuses before connecting, in the socket's DNS `lookup`, so a name that resolves (or
 * rebinds) to a private address is never dialled. Redirects are not followed.
 */

/**
 * Addresses that are not globally reachable unicast (IANA special-purpose registries), for both
 * families. IPv4-mapped and IPv4-compatible IPv6 (::/96, ::ffff:0:0/96), NAT64 and 6to4 are
 * refused whole: they embed an IPv4 address and no public JWKS needs them.
 */
const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 96], // unspecified, loopback, IPv4-compatible
  ['::ffff:0:0', 96], // IPv4-mapped
  ['64:ff9b::', 96], // NAT64
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo among them)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4
  ['fc00::', 7], // unique local (ULA)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');
}

/** True for an IP address (v4 or v6 literal) that is loopback, private, link-local, multicast or otherwise not public. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return NON_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * True when a URL's host is, by its spelling alone, not public: an IP literal in a non-public
 * range or `localhost` (RFC 6761 §6.3: `localhost` and names under it are the loopback).
 * A name may still resolve to a private address: the fetch's lookup refuses that.
 */
export function isNonPublicHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  return isNonPublicAddress(host);
}

export class OutboundFetchError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'OutboundFetchError';
  }
}

/** DNS resolution that refuses every answer naming a non-public address (before any connection). */
function publicOnlyLookup(): LookupFunction {
  return (hostname, options: LookupOptions, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error !== null) {
        callback(error, '', 0);
        return;
      }
      if (addresses.length === 0 || addresses.some((entry) => isNonPublicAddress(entry.address))) {
        const refused = Object.assign(new OutboundFetchError(`${hostname} resolves to a non-public address`), { code: 'ENOTPUBLIC' });
        callback(refused, '', 0);
        return;
      }
      if (options.all === true) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

export interface OutboundFetchOptions {
  /** ALLOW_PRIVATE_JWKS_URI: development and tests on loopback. */
  readonly allowPrivate: boolean;
  /** Connect, send and read the whole body within this. */
  readonly timeoutMs: number;
  /** A longer body is refused (and the connection dropped) once this many bytes arrived. */
  readonly maxBodyBytes: number;
  /** A failed GET of a URL is answered from memory with the same failure for this long. */
  readonly failureTtlMs: number;
  /** Failed URLs remembered at most (oldest forgotten first). */
  readonly maxRememberedFailures?: number;
}

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

interface Fetched {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

function parsesAsJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function headersOf(message: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(message.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}

/**
 * A `fetch` for oidc-provider's `fetch` option: http(s) only, no redirects, a timeout and a body
 * limit over the whole exchange, non-public addresses refused unless allowed, concurrent GETs of
 * one URL share one request, and a failed GET (network error, timeout, oversized body, a non-2xx
 * answer or one that is not JSON) is remembered for `failureTtlMs`, so a burst of client assertions for a client whose
 * jwks_uri is down costs one fetch, not one each. (oidc-provider caches a client's keys after a
 * success itself; it does not remember a failure.)
 */
export function createOutboundFetch(options: OutboundFetchOptions): Fetch {
  const lookup = options.allowPrivate ? undefined : publicOnlyLookup();
  const maxFailures = options.maxRememberedFailures ?? 1_000;
  const failures = new BoundedCache<string, { readonly error: Error; readonly untilMs: number }>(maxFailures);
  const inflight = new Map<string, Promise<Fetched>>();

  function exchange(url: URL, method: string, headers: Headers, body: Buffer | undefined, signal: AbortSignal | null | undefined): Promise<Fetched> {
    return new Promise((resolve, reject) => {
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        reject(new OutboundFetchError(`refusing to fetch a ${url.protocol} URL`));
        return;
      }
      if (!options.allowPrivate && isNonPublicHost(url.hostname)) {
        reject(new OutboundFetchError(`${url.hostname} is not a public address`));
        return;
      }
      const timeout = AbortSignal.timeout(options.timeoutMs);
      const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
        method,
        headers: Object.fromEntries(headers),
        signal: signal === null || signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
        ...(lookup === undefined ? {} : { lookup }),
        // No pooled sockets: a socket kept alive would skip the lookup on its next request.
        agent: false,
      });
      request.once('error', (error) => reject(error.name === 'AbortError' ? new OutboundFetchError('timed out', { cause: error }) : error));
      request.once('response', (response) => {
        const chunks: Buffer[] = [];
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > options.maxBodyBytes) {
            request.destroy(new OutboundFetchError(`response body exceeds ${options.maxBodyBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.once('error', reject);
        response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: headersOf(response), body: Buffer.concat(chunks) }));
      });
      request.end(body);
    });
  }

  function remember(key: string, error: Error): void {
    failures.set(key, { error, untilMs: Date.now() + options.failureTtlMs });
  }

  /** GET, single-flighted per URL, failures remembered. */
  function get(url: URL, headers: Headers, signal: AbortSignal | null | undefined): Promise<Fetched> {
    const key = url.href;
    const failed = failures.get(key);
    if (failed !== undefined) {
      if (Date.now() < failed.untilMs) return Promise.reject(new OutboundFetchError(`failed recently, not retried yet: ${failed.error.message}`, { cause: failed.error }));
      failures.delete(key);
    }
    let pending = inflight.get(key);
    if (pending === undefined) {
      // The shared request is not tied to the first caller's signal; the timeout bounds it.
      pending = exchange(url, 'GET', headers, undefined, undefined)
        .then((fetched) => {
          if (fetched.status < 200 || fetched.status > 299) remember(key, new OutboundFetchError(`answered ${fetched.status}`));
          // oidc-provider keeps any answer that parses as JSON (even a bad key set) for 60 s itself,
          // but retries one that does not parse on every request: that one is remembered here.
          else if (!parsesAsJson(fetched.body)) remember(key, new OutboundFetchError('answered with a body that is not JSON'));
          return fetched;
        })
        .catch((error: unknown) => {
          const failure = error instanceof Error ? error : new OutboundFetchError(String(error));
          remember(key, failure);
          throw failure;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, pending);
    }
    if (signal === null || signal === undefined) return pending;
    return Promise.race([
      pending,
      new Promise<never>((_resolve, reject) => {
        const abort = () => reject(signal.reason instanceof Error ? signal.reason : new OutboundFetchError('aborted'));
        if (signal.aborted) abort();
        signal.addEventListener('abort', abort, { once: true });
      }),
    ]);
  }

  return async function outboundFetch(input, init = {}) {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request?.url ?? (input as string | URL));
    const method = (init.method ?? request?.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers ?? request?.headers);
    const signal = init.signal ?? request?.signal;
    let fetched: Fetched;
    if (method === 'GET') {
      fetched = await get(url, headers, signal);
    } else {
      const body = init.body === undefined || init.body === null ? undefined : Buffer.from(await new Response(init.body).arrayBuffer());
      fetched = await exchange(url, method, headers, body, signal);
    }
    // A fresh Response per caller: callers sharing one request each read their own body.
    const status = fetched.status;
    if (status < 200 || status > 599) throw new OutboundFetchError(`answered with status ${status}`);
    return new Response(status === 204 || status === 304 ? null : new Uint8Array(fetched.body), { status, headers: fetched.headers });
  };
}
