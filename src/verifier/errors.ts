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
  | 'jwks_unavailable';

/**
 * @example
 * try { await verifier.verify(token) } catch (e) {
 *   if (e instanceof VerifierError && e.code === 'token_expired') { ... }
 * }
 */
export class VerifierError extends Error {
  readonly code: VerifierErrorCode;

  constructor(code: VerifierErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'VerifierError';
    this.code = code;
  }
}
