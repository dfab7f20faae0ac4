import { hash } from 'node:crypto';
import { errors, type default as Provider } from 'oidc-provider';
import type { ClientSecretHasher } from '../crypto/client-secret.js';
import type { Queryable } from '../db/database.js';
import { createOidcModelStore } from '../db/oidc-models.js';
import { registeredScopes } from './clients.js';
import { browserHostsOf, GATEWAY_CLIENT_ID, gatewayCallbackAllowed } from './gateway-client.js';
import { DeviceCodeAlreadyUsed } from './device-flow.js';

/**
 * The one place where Gatehouse changes oidc-provider's model classes, each because the provider
 * does not do what SPEC asks: how a client secret is compared, how a jti is claimed once, how a
 * pushed request gives out one code, how a device code moves forward once, how codes and refresh
 * tokens are spent once, how a registered scope bounds the OpenID scopes, and where the
 * gateway's own client may send codes.
 */

/** Not a scope anyone can request: an allow-list that admits no OpenID scope. */
const NO_OIDC_SCOPE = 'urn:gatehouse:no-openid-scope';

export function extendModels(
  provider: Provider,
  deps: {
    readonly db: Queryable;
    readonly clientSecrets: ClientSecretHasher;
    /** The adapter's source of client metadata (src/oidc/adapter.ts): one frozen object per client while cached. */
    readonly clientMetadata: (id: string) => Promise<object | undefined>;
  },
): void {
  // SPEC §2: secrets are stored as a keyed hash; this is the provider's one comparison point.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return Promise.resolve(this.clientSecret !== undefined && deps.clientSecrets.verify(actual, this.clientSecret));
  };

  // Performance (bench/README.md): the provider turns a stored client into a Client by hashing its
  // JSON on every lookup (lib/models/client.js find), a few microseconds of each token request. The adapter
  // hands out one frozen metadata object per client until the client cache drops it (on a change,
  // src/oidc/lookup-cache.ts), so the Client built from that object is reused while it lives; a
  // changed client is a new object, and so a new Client, as before.
  const findClient = provider.Client.find.bind(provider.Client);
  const clientsByMetadata = new WeakMap<object, InstanceType<Provider['Client']>>();
  provider.Client.find = async function findClientOncePerMetadata(id: string) {
    const metadata = typeof id === 'string' && id !== '' ? await deps.clientMetadata(id) : undefined;
    const known = metadata === undefined ? undefined : clientsByMetadata.get(metadata);
    if (known !== undefined) return known;
    const client = await findClient(id);
    if (metadata !== undefined && client !== undefined) clientsByMetadata.set(metadata, client);
    return client;
  };

  // SPEC §2: a client assertion's (and a DPoP proof's) jti is accepted once, across concurrent
  // requests and instances. The provider's own unique() is find-then-save (oidc-provider's
  // lib/models/replay_detection.js), which lets two concurrent requests with one jti both pass;
  // this claims the jti in one insert-only statement.
  const replayRecords = createOidcModelStore(deps.db);
  provider.ReplayDetection.unique = async function claimJtiOnce(iss: string, jti: string, exp: number): Promise<boolean> {
    const id = hash('sha256', `${iss}${jti}`, 'base64url');
    return replayRecords.insertOnce('ReplayDetection', id, { iss, jti: id, kind: 'ReplayDetection' }, Math.max(1, exp - Math.floor(Date.now() / 1000)));
  };

  // SPEC §12, RFC 8628: a device code moves forward once. The provider checks the code it loaded and
  // then saves it, both when a person confirms it (inFlight) and when the sign-in ends (accountId or
  // error), and it redeems it with the same find-then-mark as a request_uri: two people confirming
  // one code at once, or two polls at once, could each go on. Each step is claimed here in one
  // insert-only statement (a row per code and step, living as long as the code); the loser is
  // refused, on any instance. Its redemption is below, with the other spent-once tokens.
  const DeviceCode = provider.DeviceCode;
  // The save it inherits (BaseToken's), looked up as a call would find it.
  const saveDeviceCode: (this: InstanceType<Provider['DeviceCode']>) => Promise<string> = Reflect.get(DeviceCode.prototype, 'save');
  DeviceCode.prototype.save = async function saveDeviceCodeStepOnce(this: InstanceType<Provider['DeviceCode']>): Promise<string> {
    const step = this.accountId !== undefined || this.error !== undefined ? 'answered' : this.inFlight === true ? 'confirmed' : undefined;
    if (step !== undefined && this.jti !== undefined) {
      const id = hash('sha256', `${this.jti}:${step}`, 'base64url');
      if (!(await replayRecords.insertOnce('DeviceCodeStep', id, { kind: 'DeviceCodeStep', step }, Math.max(1, this.remainingTTL)))) throw new DeviceCodeAlreadyUsed();
    }
    return saveDeviceCode.call(this);
  };

  // Codes, refresh tokens and pushed requests are spent once. The provider checks `consumed` on the
  // object it loaded, then marks it (lib/helpers/grant_source.js, lib/actions/grants/refresh_token.js,
  // lib/actions/authorization/respond.js): two requests at once could both pass, each getting
  // tokens (or a code), and a stolen refresh token raced against its owner's would fork the grant
  // without the reuse detection seeing it. Each is marked here in one conditional statement, on any
  // instance; the loser is refused, and presenting the spent one again is the provider's reuse case.
  // - SPEC §2: an authorization code is redeemed once, a rotated refresh token used once;
  // - RFC 9126 §4: a request_uri is one-time use (refused as RFC 9126 §7.3 invalid_request_uri);
  // - SPEC §12: a device code is redeemed once (and moves forward once, above).
  const spentOnce: readonly [{ prototype: { consume(): Promise<void> } }, string, () => Error][] = [
    [provider.AuthorizationCode, 'AuthorizationCode', () => new errors.InvalidGrant('authorization code already consumed')],
    [provider.RefreshToken, 'RefreshToken', () => new errors.InvalidGrant('refresh token already consumed')],
    [provider.PushedAuthorizationRequest, 'PushedAuthorizationRequest', () => new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used')],
    [DeviceCode, 'DeviceCode', () => new errors.InvalidGrant('device code already consumed')],
  ];
  for (const [Model, model, refusal] of spentOnce) {
    Model.prototype.consume = async function consumeOnce(this: { jti: string; emit(event: string): void }): Promise<void> {
      if (!(await replayRecords.consumeOnce(model, this.jti))) throw refusal();
      this.emit('consumed');
    };
  }

  // A registered scope bounds the OpenID scopes too. The provider's metadata `scope` holds only the
  // OpenID part of it (src/oidc/clients.ts), and a client whose registered scope has none carries no
  // `scope` at all, which the provider reads as "any scope". For exactly those clients this getter
  // answers the registered scope, so the provider's allow-list check refuses every OpenID scope
  // (invalid_scope); clients with OpenID scopes keep their own `scope` property, which shadows it.
  Object.defineProperty(provider.Client.prototype, 'scope', {
    configurable: true,
    get(this: object): string | undefined {
      const registered = registeredScopes(this);
      if (registered === undefined) return undefined;
      return registered.length > 0 ? registered.join(' ') : NO_OIDC_SCOPE;
    },
    // The provider assigns metadata onto each client: a `scope` it was given becomes the client's own.
    set(this: object, value: unknown) {
      Object.defineProperty(this, 'scope', { value, writable: true, enumerable: true, configurable: true });
    },
  });

  // SPEC §7: the gateway's client redirects to `/.gatehouse/callback` on any host a browser route
  // names, wildcards included, which a static redirect_uris list cannot say. Every other client
  // keeps the provider's exact-match rule.
  const prototype = provider.Client.prototype;
  const exactRedirectUriAllowed = Object.getOwnPropertyDescriptor(prototype, 'redirectUriAllowed')?.value as (this: unknown, value: string) => boolean;
  prototype.redirectUriAllowed = function gatewayAwareRedirectUriAllowed(this: InstanceType<Provider['Client']>, value: string): boolean {
    const hosts = this.clientId === GATEWAY_CLIENT_ID ? browserHostsOf(this) : undefined;
    return hosts === undefined ? exactRedirectUriAllowed.call(this, value) : gatewayCallbackAllowed(value, hosts);
  };
}
