// The sender-constraint helpers oidc-provider's own grants use (lib/helpers/grants.js; the
// provider binds them to itself as their first argument). Gatehouse's token exchange grant
// (./token-exchange.ts) calls them so its DPoP and mTLS handling is exactly the built-in grants';
// test/flows/token-exchange.test.ts fails if an upgrade moves or changes them.
declare module 'oidc-provider/lib/helpers/grants.js' {
  import type Provider from 'oidc-provider';
  import type { KoaContextWithOIDC } from 'oidc-provider';

  export interface DpopResult {
    readonly thumbprint: string;
    readonly jti: string;
    readonly iat: number;
  }

  export function validateDpop(provider: Provider, ctx: KoaContextWithOIDC): Promise<DpopResult | undefined>;
  export function checkDpopReplay(provider: Provider, ctx: KoaContextWithOIDC, dPoP: DpopResult | undefined, clientId: string): Promise<void>;
  export function checkDpopRequired(provider: Provider, ctx: KoaContextWithOIDC, dPoP: DpopResult | undefined): void;
  export function checkMtlsCert(provider: Provider, ctx: KoaContextWithOIDC): unknown;
}
