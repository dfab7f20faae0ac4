/** Why a token was refused. Callers switch on `code`, never on the message. */
export type VerifierErrorCode =
  | 'token_malformed'
  | 'signature_invalid'
  | 'unknown_key'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'wrong_type'
  | 'inner_invalid'
  | 'jwks_unavailable'
  /** The DPoP proof is malformed, badly signed, stale, replayed or for another request (RFC 9449 §4.3). */
  | 'dpop_invalid'
  /** The token's `cnf` does not fit what the request presented: no or another DPoP key or certificate, or a bound token sent as Bearer. */
  | 'binding_mismatch';

/** Which sender constraint a `dpop_invalid` or `binding_mismatch` is about. */
export type SenderBinding = 'dpop' | 'certificate';

/**
 * @example
 * try { await verifier.verify(token) } catch (e) {
 *   if (e instanceof VerifierError && e.code === 'token_expired') { ... }
 * }
 */
export class VerifierError extends Error {
  readonly code: VerifierErrorCode;
  /** Set for `dpop_invalid` and `binding_mismatch`: the middleware answers a DPoP challenge for 'dpop'. */
  readonly binding: SenderBinding | undefined;

  constructor(code: VerifierErrorCode, message: string, options?: ErrorOptions & { binding?: SenderBinding }) {
    super(message, options);
    this.name = 'VerifierError';
    this.code = code;
    this.binding = options?.binding;
  }
}
