import { request as httpRequest } from 'node:http';
import fc from 'fast-check';

/**
 * Hostile input for property-based tests (fast-check): odd text (NUL, lone surrogates, bidi
 * marks, 100 KB runs), encodings that break percent-decoding, form and query strings built from
 * real parameter names with duplicates, wrong content types, bodies past every limit, JSON of the
 * wrong shape, and a raw HTTP exchange that sends all of it byte for byte.
 */

const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00y',
  '\ud83d',
  '\u202eevil',
  '\u200f\u200e',
  '\ufeff',
  '\u{10ffff}',
  '\u{1f4a9}',
  'ＡＬＩＣＥ',
  'İı',
  'ß',
  'e\u0301',
  '\r\n',
  '\t',
  '%',
  '%00',
  '%zz',
  '%E0%A4%A',
  '%ED%A0%80',
  '%C0%AF',
  '../../etc/passwd',
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'toString',
  'null',
  'undefined',
  'NaN',
  '-1',
  '0',
  '1e309',
  '99999999999999999999999999',
  '<script>alert(1)</script>',
  "' OR '1'='1",
  '${7*7}',
  '\\',
  '\\u0000',
  '"',
  '&',
  '=',
  ';',
  '[]',
  '{}',
  'a'.repeat(300),
];

const PERCENT_GARBAGE = ['%', '%Z', '%zz', '%E0%A4%A', '%ED%A0%80', '%C0%AF', '%00', '%FF%FE', '%2F', '%25', '%u0041', '%%32%65', '%0D%0A'];

/** Characters that text columns, JSON, URLs and renderers each handle differently. */
const TROUBLE = ['\u0000', '\ud800', '\udc00', '\u202e', '\ufeff', '\u0085', '\u2028', '\r\n', '%00', '\\u0000'];

/** Short troublesome text: the usual suspects, random strings, any code point (lone surrogates included), plain text with trouble inside. */
export const oddText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NASTY_STRINGS),
  fc.string({ maxLength: 24 }),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.tuple(fc.string({ maxLength: 12 }), fc.constantFrom(...TROUBLE), fc.string({ maxLength: 12 })).map((parts) => parts.join('')),
);

/** Up to ~100 KB of one troublesome unit. */
export const longText = fc
  .tuple(fc.constantFrom('a', 'é', '\u0000', '\u202e', '\u{1f4a9}', '\ud800', '%', '&', '='), fc.integer({ min: 1_000, max: 100_000 }))
  .map(([unit, size]) => unit.repeat(Math.ceil(size / unit.length)));

/**
 * Odd text, now and then very long. Long values mostly go in bodies: a URL or header that long is
 * refused by Node itself with 431, which exercises nothing of ours.
 */
export const hostileText: fc.Arbitrary<string> = fc.oneof({ weight: 12, arbitrary: oddText }, { weight: 1, arbitrary: longText });

/** Mostly `value`, sometimes one of `others` (fc.option's `freq` counts the other way round). */
export function mostly<T>(value: T, others: fc.Arbitrary<T>, odds = 4): fc.Arbitrary<T> {
  return fc.oneof({ weight: odds, arbitrary: fc.constant(value) }, { weight: 1, arbitrary: others });
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** RFC 3986 percent-encoding of the UTF-8 bytes (a lone surrogate becomes U+FFFD's bytes). */
export function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Sent nearly as is: printable ASCII stays raw (`&`, `=`, `%`, `#`, `?` included), the rest is encoded. */
export function rawForUrl(text: string): string {
  return text.replace(/[^\x21-\x7e]+/gu, (run) => percentEncode(run));
}

/** Header values are ISO-8859-1 without control characters; anything else becomes `?`. */
export function headerSafe(text: string): string {
  return text.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
}

/** One URL or form component: properly encoded, nearly raw, or followed by broken percent escapes. */
export function component(text: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: text.map(percentEncode) },
    { weight: 1, arbitrary: text.map(rawForUrl) },
    { weight: 1, arbitrary: fc.tuple(text, fc.constantFrom(...PERCENT_GARBAGE)).map(([t, garbage]) => `${percentEncode(t)}${garbage}`) },
  );
}

/** An encoded `name=value` (or a bare `name`). */
type EncodedPair = readonly [name: string, value: string | null];

function joinPairs(list: readonly EncodedPair[]): string {
  return list.map(([name, value]) => (value === null ? name : `${name}=${value}`)).join('&');
}

function encodedPair(names: readonly string[], values: fc.Arbitrary<string>): fc.Arbitrary<EncodedPair> {
  const name = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...names) }, { weight: 1, arbitrary: oddText });
  return fc.tuple(component(name), fc.option(component(values), { freq: 8, nil: null }));
}

/** `name=value&...` from real parameter names (so duplicates are common) and odd ones. */
export function pairs(names: readonly string[], values: fc.Arbitrary<string>, maxLength = 12): fc.Arbitrary<string> {
  return fc.array(encodedPair(names, values), { maxLength }).map(joinPairs);
}

type Edit = { readonly add: EncodedPair } | { readonly set: number; readonly value: string } | { readonly drop: number } | { readonly repeat: number };

/** A valid request's parameters with up to three edits: one added, replaced, dropped or sent twice. */
export function edited(base: readonly (readonly [string, string])[], names: readonly string[], values: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    { weight: 2, arbitrary: encodedPair(names, values).map((add) => ({ add })) },
    { weight: 3, arbitrary: fc.record({ set: fc.nat(), value: component(values) }) },
    { weight: 1, arbitrary: fc.record({ drop: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ repeat: fc.nat() }) },
  );
  return fc.array(edit, { maxLength: 3 }).map((edits) => {
    const list: EncodedPair[] = base.map(([name, value]) => [percentEncode(name), percentEncode(value)]);
    for (const change of edits) {
      if ('add' in change) {
        list.push(change.add);
      } else if (list.length > 0) {
        if ('set' in change) {
          const index = change.set % list.length;
          list[index] = [list[index]![0], change.value];
        } else if ('drop' in change) {
          list.splice(change.drop % list.length, 1);
        } else {
          list.push(list[change.repeat % list.length]!);
        }
      }
    }
    return joinPairs(list);
  });
}

/** A query string: usually short, now and then far past Node's 16 KB header limit. */
export function query(names: readonly string[], values: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.constant('') },
    { weight: 10, arbitrary: pairs(names, values) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...names), longText).map(([name, value]) => `${name}=${percentEncode(value)}`) },
  );
}


export const FORM = 'application/x-www-form-urlencoded';

export const CONTENT_TYPES = [
  FORM,
  `${FORM}; charset=utf-8`,
  `${FORM}; charset=iso-8859-1`,
  `${FORM}; charset=nonsense`,
  'application/json',
  'application/json; charset=utf-16',
  'application/merge-patch+json',
  'text/plain',
  'text/html',
  'multipart/form-data; boundary=----fuzz',
  'multipart/form-data',
  'application/xml',
  'application/octet-stream',
  '*/*',
  `${FORM}, application/json`,
  ';;;',
  '',
];

export const contentType: fc.Arbitrary<string | null> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: oddText.map(headerSafe) },
  { weight: 2, arbitrary: fc.constant(null) },
);

/** A request body, as text in an encoding (readable when a counterexample is printed). */
export interface Body {
  readonly text: string;
  readonly encoding: 'utf8' | 'base64';
}

export const utf8 = (text: string): Body => ({ text, encoding: 'utf8' });

/** Past every body limit (hosted pages 16 KB, provider 56 KB, admin API 64 KB), up to 3 MB. */
export const hugeBody = fc.integer({ min: 16_000, max: 3_000_000 }).map((size) => utf8(`grant_type=client_credentials&scope=${'a'.repeat(size)}`));

/** Bodies that are not what the endpoint reads: JSON, random bytes, raw text, too big, none. */
export const strangeBody: fc.Arbitrary<Body | null> = fc.oneof(
  fc.jsonValue().map((value) => utf8(JSON.stringify(value) ?? 'null')),
  fc.uint8Array({ maxLength: 512 }).map((bytes) => ({ text: Buffer.from(bytes).toString('base64'), encoding: 'base64' as const })),
  hostileText.map(utf8),
  hugeBody,
  fc.constant(null),
);

/** Values of the wrong type and shape, nested a little. */
export const jsonish: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    oddText,
    fc.integer(),
    fc.double(),
    fc.constantFrom(1e308, -0, 2 ** 53 + 1, -1, 0, 0.5, Number.MAX_SAFE_INTEGER),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(oddText, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True if any string (or key) in a parsed JSON value is not well-formed UTF-16 (a lone surrogate). */
export function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (typeof value === 'object' && value !== null) return Object.entries(value).some(([key, item]) => LONE_SURROGATE.test(key) || hasLoneSurrogate(item));
  return false;
}


/** One request, as it goes on the wire (readable when fast-check prints a counterexample). */
export interface HostileRequest {
  readonly method: string;
  /** Path and query exactly as sent on the request line. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Body | null;
  /** Sent with Transfer-Encoding: chunked instead of a Content-Length. */
  readonly chunked: boolean;
}

/** Methods Node's HTTP parser accepts, known to the routes or not. */
export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND'];

export function withQuery(path: string, search: string): string {
  return search === '' ? path : `${path}?${search}`;
}

/** Mostly a Content-Length, sometimes Transfer-Encoding: chunked. */
export const chunked = fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });

/** What came back: status and body (as UTF-8). */
export interface Answer {
  readonly status: number;
  readonly text: string;
}

/**
 * Sends one request byte for byte with node:http (fetch would normalise the path, refuse some
 * methods and headers, and reuse connections), on a fresh connection. Rejects if no answer came
 * within `timeoutMs`: the server hung.
 */
export function exchange(
  port: number | string,
  request: { method: string; path: string; headers: Record<string, string>; body: Buffer | undefined; chunked: boolean },
  timeoutMs: number,
): Promise<Answer> {
  const { method, path, body } = request;
  const headers = { ...request.headers, ...(request.chunked && body !== undefined ? { 'transfer-encoding': 'chunked' } : {}) };
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    // CORS echoes a long Origin back: read answers past Node's default 16 KB of headers.
    const options = { host: '127.0.0.1', port, method, path, headers, agent: false, maxHeaderSize: 1 << 20, signal: AbortSignal.timeout(timeoutMs) };
    const outgoing = httpRequest(options, (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', (error: Error) => {
      if (answered) return;
      reject(error.name === 'AbortError' ? new Error(`no answer within ${timeoutMs} ms: the server hung`) : error);
    });
    if (body !== undefined && request.chunked) {
      // Two chunks, so the server cannot know the length up front.
      outgoing.write(body.subarray(0, body.length >> 1));
      outgoing.end(body.subarray(body.length >> 1));
    } else {
      outgoing.end(body);
    }
  });
}
