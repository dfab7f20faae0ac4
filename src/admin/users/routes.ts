import { pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, WITH_BODY, type PathParam, type RouteTable } from '../route.js';
import { z } from 'zod';
import { passkeyResponse, userIdentityResponse, userResponse } from '../../management/users/presenter.js';
import { createUserBody, patchUserBody, userListQuery } from '../../management/users/schema.js';

/** People who sign in through the hosted pages: `/admin/v1/users` (SPEC §5), scope `admin:users`. */

const User = named('User', userResponse);
const UserPage = named('UserPage', pageOf(userResponse), [User]);
const UserCreate = named('UserCreate', createUserBody);
const UserPatch = named('UserPatch', patchUserBody);
const Passkey = named('Passkey', passkeyResponse);
const PasskeyList = named('PasskeyList', z.object({ items: z.array(passkeyResponse) }).describe('A person’s passkeys, oldest first (a person has a handful: not paged).'), [Passkey]);

const userId: PathParam = { schema: userResponse.shape.id, description: 'The person’s id.' };
const passkeyId: PathParam = { schema: passkeyResponse.shape.id, description: 'The passkey’s credential id (base64url).' };
const providerId: PathParam = { schema: userIdentityResponse.shape.provider_id, description: 'The identity provider’s id.' };

const USERNAME_TAKEN = 'compared ignoring case and width, or looks like an existing one (UTS #39 confusables; `errors` points at `#/username`).';

export const userRoutes: RouteTable = {
  tag: { name: 'Users', description: 'People who sign in through the hosted pages. Scope `admin:users`.' },
  routes: [
    route({
      operationId: 'listUsers',
      method: 'get',
      path: '/users',
      summary: 'List people',
      description: 'Oldest first, each with their `identities` at upstream providers. Never shows a password or a second-factor secret.',
      scope: 'admin:users',
      query: userListQuery,
      response: { status: 200, description: 'A page of people.', schema: UserPage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { users }) => users.list(query),
    }),
    route({
      operationId: 'createUser',
      method: 'post',
      path: '/users',
      summary: 'Create a person',
      scope: 'admin:users',
      body: {
        schema: UserCreate,
        required: true,
        example: {
          username: 'ada',
          password: 'plum-violet-orbit-42',
          email: 'ada@example.com',
          email_verified: true,
          name: 'Ada Lovelace',
          roles: ['billing:admin'],
          mfa_required: true,
        },
      },
      response: { status: 201, description: 'The stored person.', schema: User, location: (user) => `/users/${user.id}` },
      errors: [...WITH_BODY, 409, ...AUTHENTICATED],
      conflict: `The username is taken, ${USERNAME_TAKEN}`,
      handler: ({ body, caller }, { users }) => users.create(body, caller),
    }),
    route({
      operationId: 'readUser',
      method: 'get',
      path: '/users/{id}',
      summary: 'Read a person',
      scope: 'admin:users',
      params: { id: userId },
      response: { status: 200, description: 'The person.', schema: User, etag: true },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params }, { users }) => users.get(params.id),
    }),
    route({
      operationId: 'updateUser',
      method: 'patch',
      path: '/users/{id}',
      summary: 'Update a person',
      description:
        'Given fields replace the stored ones; `null` clears `email` or `name`; `password` sets a new one. `disabled: true` ends the person’s sessions and grants at once. A new email is unverified unless `email_verified` says otherwise.',
      scope: 'admin:users',
      params: { id: userId },
      ifMatch: true,
      body: { schema: UserPatch, required: false },
      response: { status: 200, description: 'The updated person.', schema: User, etag: true },
      errors: [...WITH_BODY, 404, 409, 412, ...AUTHENTICATED],
      conflict: `The new username is taken, ${USERNAME_TAKEN}`,
      handler: ({ params, body, caller, ifMatch }, { users }) => users.update(params.id, body, caller, ifMatch),
    }),
    route({
      operationId: 'deleteUser',
      method: 'delete',
      path: '/users/{id}',
      summary: 'Delete a person',
      description: 'Their sessions, grants, codes and refresh tokens go at once.',
      scope: 'admin:users',
      params: { id: userId },
      response: { status: 204, description: 'Deleted.' },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params, caller }, { users }) => users.delete(params.id, caller),
    }),
    route({
      operationId: 'resetUserSecondFactor',
      method: 'delete',
      path: '/users/{id}/mfa',
      summary: 'Remove a person’s second factor',
      description: 'Removes the TOTP secret, the passkeys and the recovery codes; if a second factor is required, the next sign-in enrolls again.',
      scope: 'admin:users',
      params: { id: userId },
      response: { status: 204, description: 'Removed (also when there was none).' },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params, caller }, { users }) => users.resetSecondFactor(params.id, caller),
    }),
    route({
      operationId: 'listUserPasskeys',
      method: 'get',
      path: '/users/{id}/passkeys',
      summary: 'List a person’s passkeys',
      description: 'Oldest first. Shows what tells them apart and when each was last used; never a public key.',
      scope: 'admin:users',
      params: { id: userId },
      response: { status: 200, description: 'The person’s passkeys.', schema: PasskeyList },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params }, { users }) => users.listPasskeys(params.id),
    }),
    route({
      operationId: 'removeUserPasskey',
      method: 'delete',
      path: '/users/{id}/passkeys/{passkey_id}',
      summary: 'Remove a person’s passkey',
      description:
        'Like a removed second factor, ends the person’s sessions, grants and refresh tokens at once. When it was their last second factor, the recovery codes go too, and if a second factor is required the next sign-in enrolls again. Audited as `passkey.removed`.',
      scope: 'admin:users',
      params: { id: userId, passkey_id: passkeyId },
      response: { status: 204, description: 'Removed.' },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params, caller }, { users }) => users.removePasskey(params.id, params.passkey_id, caller),
    }),
    route({
      operationId: 'unlinkUserIdentity',
      method: 'delete',
      path: '/users/{id}/identities/{provider_id}',
      summary: 'Unlink a person from an identity provider',
      description: 'Removes their identity at that provider (SPEC §10); their next sign-in there is matched again as a first one.',
      scope: 'admin:users',
      params: { id: userId, provider_id: providerId },
      response: { status: 204, description: 'Unlinked.' },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params, caller }, { users }) => users.unlinkIdentity(params.id, params.provider_id, caller),
    }),
  ],
};
