import type { PasswordHasher } from '../../accounts/passwords.js';
import { normalizeUsername, usernameSkeleton } from '../../accounts/usernames.js';
import type { Database, Queryable } from '../../db/database.js';
import { createUserIdentityStore, type LinkedIdentityRow } from '../../db/identity-providers.js';
import { createOidcModelStore } from '../../db/oidc-models.js';
import { createUserStore, usernameConstraintViolated, type UsernameConstraint, type UserFields, type UserRow } from '../../db/users.js';
import { missingPrivileges, recordAudit, type AdminContext } from '../../audit/audit.js';
import { adminScopesOpenedBy } from '../admin-scopes.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { createPasskeyStore } from '../../db/passkeys.js';
import { presentPasskey, presentUser, type PasskeyResponse, type UserResponse } from './presenter.js';
import { checkIfMatch } from '../etag.js';
import { createSecondFactorStore } from '../../db/second-factor.js';
import type { CreateUserBody, PatchUserBody } from './schema.js';
import { Conflict, Forbidden, NotFound, ValidationFailed, type ManagementError } from '../errors.js';

export interface UserServiceDeps {
  readonly db: Database;
  /** argon2id, ~30 ms a hash on the libuv pool: always called before a transaction opens, never inside one. */
  readonly hasher: PasswordHasher;
}

/** The fields an update can change, as the admin API names them (the password is never listed). */
const AUDITED_FIELDS = ['username', 'email', 'email_verified', 'name', 'roles', 'disabled', 'mfa_required'] as const;

function notFound(): ManagementError {
  return new NotFound('No user with that id.');
}

function usernameTaken(): ManagementError {
  return new Conflict('A user with that username already exists.', {
    errors: [{ pointer: '#/username', detail: 'already taken (usernames are compared ignoring case and width)' }],
  });
}

/** SPEC §4: "refused when confusable with an existing one (Unicode TR39 skeletons)". */
function usernameLooksAlike(): ManagementError {
  return new Conflict('A user with a username that looks like this one already exists.', {
    errors: [{ pointer: '#/username', detail: 'looks like an existing username (Unicode TR39 confusables, ignoring case)' }],
  });
}

function usernameRefused(conflict: UsernameConstraint): ManagementError {
  return conflict === 'skeleton' ? usernameLooksAlike() : usernameTaken();
}

function changedFields(before: UserRow, after: UserRow): string[] {
  const a = presentUser(before, []);
  const b = presentUser(after, []);
  return AUDITED_FIELDS.filter((field) => JSON.stringify(a[field]) !== JSON.stringify(b[field])).sort();
}

/** People as the API shows them, each with their identities at upstream providers (one query a page). */
async function presentWithIdentities(db: Queryable, rows: readonly UserRow[]): Promise<UserResponse[]> {
  const byUser = new Map<string, LinkedIdentityRow[]>();
  for (const identity of await createUserIdentityStore(db).forUsers(rows.map((row) => row.id))) {
    byUser.set(identity.user_id, [...(byUser.get(identity.user_id) ?? []), identity]);
  }
  return rows.map((row) => presentUser(row, byUser.get(row.id) ?? []));
}

async function present(db: Queryable, row: UserRow): Promise<UserResponse> {
  const [user] = await presentWithIdentities(db, [row]);
  return user!;
}

/**
 * A person whose roles open the console is as strong as the admin scopes those roles stand for
 * (SPEC §11). Creating one, changing one (roles, password, second factor, identities, disabling)
 * or deleting one needs those scopes, or a holder of `admin:users` alone could make themselves
 * `gatehouse:admin`, or take over an admin by setting their password.
 */
function assertMayManage(context: AdminContext, verb: string, ...roleSets: readonly (readonly string[])[]): void {
  const missing = missingPrivileges(context.privileges, roleSets.flatMap((roles) => adminScopesOpenedBy(roles)));
  if (missing.length > 0) {
    throw new Forbidden(`To ${verb} a person whose roles open the admin console, the caller must hold every admin scope those roles stand for; it lacks: ${missing.join(' ')}.`);
  }
}

/** People: the admin API, the CLI and the console all go through here (one code path). */
export function createUserService(deps: UserServiceDeps) {
  const { db, hasher } = deps;

  return {
    /** How many there are (the console's overview). */
    count(): Promise<number> {
      return createUserStore(db).count();
    },

    async list(query: { limit: number; cursor?: string | undefined; username?: string | undefined; email?: string | undefined }): Promise<Page<UserResponse>> {
      const rows = await createUserStore(db).list({
        after: decodeCursor(query.cursor),
        limit: query.limit + 1,
        usernamePrefix: query.username === undefined ? undefined : normalizeUsername(query.username),
        emailPrefix: query.email,
      });
      const page = toPage(rows, query.limit, (row) => row.seq, (row) => row);
      return { ...page, items: await presentWithIdentities(db, page.items) };
    },

    async get(id: string): Promise<UserResponse> {
      const row = await createUserStore(db).findById(id);
      if (row === undefined) throw notFound();
      return present(db, row);
    },

    async create(body: CreateUserBody, audit: AdminContext): Promise<UserResponse> {
      assertMayManage(audit, 'create', body.roles);
      const usernameNormalized = normalizeUsername(body.username);
      const skeleton = usernameSkeleton(body.username);
      // A taken or look-alike name is refused before spending a hash on it; the insert below settles
      // races: its unique indexes make two concurrent look-alikes end in one user.
      const conflict = await createUserStore(db).findUsernameConflict(usernameNormalized, skeleton);
      if (conflict !== undefined) throw usernameRefused(conflict);
      const passwordHash = await hasher.hash(body.password);
      const row = await db.transaction(async (tx) => {
        const created = await createUserStore(tx).insert(
          {
            username: body.username,
            usernameNormalized,
            email: body.email,
            emailVerified: body.email_verified,
            name: body.name,
            roles: body.roles,
            disabled: body.disabled,
            mfaRequired: body.mfa_required,
          },
          passwordHash,
          skeleton,
        );
        if (created === undefined) throw usernameRefused((await createUserStore(tx).findUsernameConflict(usernameNormalized, skeleton)) ?? 'username');
        await recordAudit(tx, audit, {
          type: 'user.created',
          target: created.id,
          details: { username: created.username, roles: created.roles, mfa_required: created.mfa_required, disabled: created.disabled },
        });
        return created;
      });
      // A new person has no identities yet.
      return presentUser(row, []);
    },

    async update(id: string, patch: PatchUserBody, audit: AdminContext, ifMatch?: string): Promise<UserResponse> {
      const { password, ...changes } = patch;
      const passwordHash = password === undefined ? undefined : await hasher.hash(password);
      return db.transaction(async (tx) => {
        const store = createUserStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        checkIfMatch(ifMatch, await present(tx, current));
        assertMayManage(audit, 'change', current.roles, changes.roles ?? []);

        const email = changes.email === undefined ? current.email : changes.email;
        const next: UserFields = {
          username: changes.username ?? current.username,
          usernameNormalized: changes.username === undefined ? current.username_normalized : normalizeUsername(changes.username),
          email,
          // A new address has not been verified, unless the same request says it has (as Auth0 and Keycloak do).
          emailVerified: changes.email_verified ?? (email === current.email ? current.email_verified : false),
          name: changes.name === undefined ? current.name : changes.name,
          roles: changes.roles ?? current.roles,
          disabled: changes.disabled ?? current.disabled,
          mfaRequired: changes.mfa_required ?? current.mfa_required,
        };
        if (next.emailVerified && next.email === null) {
          throw new ValidationFailed('The request body is invalid.', {
            errors: [{ pointer: '#/email_verified', detail: 'cannot be true without an email' }],
          });
        }
        // Only a new username gets a new skeleton: a row left without one (a look-alike from before
        // migrations/0009) can still have its other fields changed.
        const renamed = changes.username !== undefined && changes.username !== current.username;
        let skeleton = current.username_skeleton;
        if (renamed) {
          skeleton = usernameSkeleton(next.username);
          const conflict = await store.findUsernameConflict(next.usernameNormalized, skeleton, id);
          if (conflict !== undefined) throw usernameRefused(conflict);
        }

        try {
          await store.update(id, next, skeleton);
        } catch (error) {
          // SQLSTATE 23505: a concurrent request took the name or a look-alike between our check and our write.
          const conflict = usernameConstraintViolated(error);
          if (conflict !== undefined) throw usernameRefused(conflict);
          throw error;
        }
        if (passwordHash !== undefined) await store.setPasswordHash(id, passwordHash, { changed: true });
        // SPEC §4: "A password set by an admin, a removed second factor or a disabled user ends that
        // person's sessions, grants and refresh tokens at once": in the same transaction as the change.
        const revoked = changes.disabled === true || passwordHash !== undefined ? await createOidcModelStore(tx).revokeByAccountId(id) : 0;
        const updated = await store.findById(id);
        if (updated === undefined) throw notFound();

        const disabledNow = updated.disabled && !current.disabled;
        const fields = changedFields(current, updated).filter((field) => !(disabledNow && field === 'disabled'));
        // One event per kind of change; a request that changes nothing is still recorded as an update.
        if (fields.length > 0 || (passwordHash === undefined && !disabledNow)) {
          await recordAudit(tx, audit, { type: 'user.updated', target: id, details: { fields } });
        }
        if (disabledNow) await recordAudit(tx, audit, { type: 'user.disabled', target: id, details: { revoked_artifacts: revoked } });
        if (passwordHash !== undefined) {
          // Counted on the disable event when both happen in one request (one revocation).
          await recordAudit(tx, audit, { type: 'user.password_changed', target: id, details: { revoked_artifacts: disabledNow ? 0 : revoked } });
        }
        return present(tx, updated);
      });
    },

    /** SPEC §5: removes the second factor and recovery codes; the next sign-in enrolls again if required. */
    async resetSecondFactor(id: string, audit: AdminContext): Promise<void> {
      await db.transaction(async (tx) => {
        const current = await createUserStore(tx).findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        assertMayManage(audit, 'remove the second factor of', current.roles);
        const removed = await createSecondFactorStore(tx).reset(id);
        // SPEC §4: a removed second factor ends the person's sessions, grants and refresh tokens at once.
        const revoked = await createOidcModelStore(tx).revokeByAccountId(id);
        await recordAudit(tx, audit, { type: 'mfa.reset', target: id, details: { removed, revoked_artifacts: revoked } });
      });
    },

    /** SPEC §4: the person's passkeys, oldest first. */
    async listPasskeys(id: string): Promise<{ items: PasskeyResponse[] }> {
      if ((await createUserStore(db).findById(id)) === undefined) throw notFound();
      return { items: (await createPasskeyStore(db).listForUser(id)).map(presentPasskey) };
    },

    /**
     * Removes one passkey. Like a removed second factor (SPEC §4), it ends the person's sessions,
     * grants and refresh tokens at once; when it was their last factor, the recovery codes go too
     * (as with resetSecondFactor), and the next sign-in enrolls again if one is required.
     */
    async removePasskey(id: string, passkeyId: string, audit: AdminContext): Promise<void> {
      await db.transaction(async (tx) => {
        const current = await createUserStore(tx).findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        assertMayManage(audit, 'remove a passkey of', current.roles);
        const removed = await createPasskeyStore(tx).remove(id, passkeyId);
        if (removed === undefined) throw new NotFound('The user has no passkey with that id.');
        const secondFactors = createSecondFactorStore(tx);
        const lastFactor = !(await secondFactors.isEnrolled(id));
        if (lastFactor) await secondFactors.reset(id);
        const revoked = await createOidcModelStore(tx).revokeByAccountId(id);
        await recordAudit(tx, audit, {
          type: 'passkey.removed',
          target: id,
          details: { credential_id: removed.credential_id, name: removed.name, last_factor: lastFactor, revoked_artifacts: revoked },
        });
      });
    },

    /**
     * SPEC §10: removes the person's link to an upstream provider; their next sign-in there is
     * matched again (by verified email, or as a new person, where the provider allows).
     */
    async unlinkIdentity(id: string, providerId: string, audit: AdminContext): Promise<void> {
      await db.transaction(async (tx) => {
        const current = await createUserStore(tx).findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        assertMayManage(audit, 'unlink an identity of', current.roles);
        const identities = createUserIdentityStore(tx);
        const identity = (await identities.forUsers([id])).find((candidate) => candidate.provider_id === providerId);
        if (identity === undefined || !(await identities.unlink(id, providerId))) throw new NotFound('The user has no identity at that provider.');
        await recordAudit(tx, audit, {
          type: 'user.identity_unlinked',
          target: id,
          details: { provider_id: providerId, provider_name: identity.provider_name, subject: identity.subject },
        });
      });
    },

    /** The person, their sessions, grants, codes and refresh tokens go at once. */
    async delete(id: string, audit: AdminContext): Promise<void> {
      await db.transaction(async (tx) => {
        const store = createUserStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        assertMayManage(audit, 'delete', current.roles);
        const revoked = await createOidcModelStore(tx).revokeByAccountId(id);
        await store.delete(id);
        await recordAudit(tx, audit, { type: 'user.deleted', target: id, details: { username: current.username, revoked_artifacts: revoked } });
      });
    },
  };
}

export type UserService = ReturnType<typeof createUserService>;
