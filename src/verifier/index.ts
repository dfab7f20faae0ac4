// Public face of `gatehouse/verifier` (package.json "exports"): what a resource server imports.
export { createVerifier, type AccessTokenClaims, type Actor, type FetchBackoff, type InnerClaims, type VerifiedToken, type Verifier, type VerifierOptions } from './verifier.js';
export { requireToken, type BearerFailure, type RequireTokenOptions } from './middleware.js';
export { VerifierError, type SenderBinding, type VerifierErrorCode } from './errors.js';
export { DPOP_ALGS, type DpopOptions, type DpopPresentation, type DpopReplayStore, type PresentedBinding } from './sender-binding.js';
