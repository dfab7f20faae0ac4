import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { ManagementServices } from '../../management/index.js';
import { ManagementError, NotFound, parseOrThrow, PreconditionFailed, ValidationFailed, type FieldError } from '../../management/errors.js';
import { DEFAULT_LIMIT } from '../../management/pagination.js';
import type { PasskeyResponse, UserResponse } from '../../management/users/presenter.js';
import { createUserBody, patchUserBody, userListQuery } from '../../management/users/schema.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/passwords.js';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import { checked, ERROR_STATUS, errorsByField, hasErrors, listField, NO_ERRORS, STALE_FORM_MESSAGE, versionOf, type FormErrors } from '../forms.js';
import type { ConsoleAreaModule, ConsoleKit, ConsoleState } from '../routes.js';

/**
 * SPEC §11, the console's users: everything `/admin/v1/users` does (SPEC §5, §10), through the
 * same user service, schemas and audit events, the person as the actor. A list with one search
 * box and keyset paging; a create form; a person's page with an edit form (carrying the version
 * it was read at, so a change in between is a conflict, not an overwrite); a new password;
 * disable and enable, removing the second factor or one passkey, unlinking an identity and deleting, each
 * behind a confirmation page that says so when the person is about to act on themselves (the
 * admin API allows it, so the console does too, but never silently).
 */

const PAGE_SIZE = DEFAULT_LIMIT;

const CREATE_FIELDS = ['username', 'password', 'password_confirmation', 'email', 'email_verified', 'name', 'roles', 'mfa_required', 'disabled'] as const;
type CreateField = (typeof CREATE_FIELDS)[number];
/** `disabled` and `password` have their own pages: disabling needs a confirmation, a password is never shown. */
const EDIT_FIELDS = ['username', 'email', 'email_verified', 'name', 'roles', 'mfa_required'] as const;
type EditField = (typeof EDIT_FIELDS)[number];
const PASSWORD_FIELDS = ['password', 'password_confirmation'] as const;
type PasswordField = (typeof PASSWORD_FIELDS)[number];

/** What a redirect after a change says; only these keys, so the query string cannot put words on the page. */
const DONE_MESSAGES = {
  created: 'User created.',
  updated: 'Changes saved.',
  password: 'New password set. The person’s sessions, grants and refresh tokens have ended.',
  disabled: 'User disabled. Their sessions, grants and refresh tokens have ended, and they can no longer sign in.',
  enabled: 'User enabled. They can sign in again.',
  'second-factor': 'Second factor removed, with the recovery codes. Their sessions have ended; the next sign-in enrolls again if one is required.',
  unlinked: 'Identity unlinked.',
  'passkey-removed': 'Passkey removed. The person’s sessions, grants and refresh tokens have ended.',
  deleted: 'User deleted.',
} as const;
type Done = keyof typeof DONE_MESSAGES;

/** The destructive actions on a person, each a confirmation page (GET) and the change (POST). */
const ACTIONS = {
  disable: {
    title: 'Disable user',
    button: 'Disable this user',
    consequences: ['They can no longer sign in.', 'Their sessions, grants and refresh tokens end at once, on every client.', 'You can enable them again later.'],
    self: 'This is you. Disabling yourself ends this console session at once, and you will not be able to sign in again until someone else enables you.',
    done: 'disabled',
  },
  enable: {
    title: 'Enable user',
    button: 'Enable this user',
    consequences: ['They can sign in again with their password (and second factor, if they have one).'],
    self: 'This is you.',
    done: 'enabled',
  },
  'second-factor': {
    title: 'Remove second factor',
    button: 'Remove the second factor',
    consequences: ['Their TOTP secret, passkeys and recovery codes are removed.', 'Their sessions, grants and refresh tokens end at once.', 'If a second factor is required, their next sign-in enrolls a new one.'],
    self: 'This is you. Removing your own second factor ends this console session; your next sign-in to the console enrolls a new one.',
    done: 'second-factor',
  },
  delete: {
    title: 'Delete user',
    button: 'Delete this user',
    consequences: ['The person, their sessions, grants, codes and refresh tokens are removed at once.', 'Their links to identity providers go too.', 'This cannot be undone.'],
    self: 'This is you. Deleting yourself ends this console session and you will not be able to sign in again.',
    done: 'deleted',
  },
} as const satisfies Record<string, { title: string; button: string; consequences: readonly string[]; self: string; done: Done }>;
type Action = keyof typeof ACTIONS;

type Values<Field extends string> = Record<Field, string>;

function valuesOf<Field extends string>(fields: readonly Field[], form: Record<string, string>): Values<Field> {
  const values = {} as Values<Field>;
  for (const field of fields) values[field] = form[field] ?? '';
  return values;
}

/** A person's stored values, as the edit form shows them. */
function editValuesOf(user: UserResponse): Values<EditField> {
  return {
    username: user.username,
    email: user.email ?? '',
    email_verified: user.email_verified ? 'on' : '',
    name: user.name ?? '',
    roles: user.roles.join(' '),
    mfa_required: user.mfa_required ? 'on' : '',
  };
}

/** An empty text field clears email or name (the admin API's `null`). */
function orNull(value: string): string | null {
  const text = value.trim();
  return text === '' ? null : text;
}

function editBody(values: Values<EditField>): Record<string, unknown> {
  return {
    username: values.username,
    email: orNull(values.email),
    email_verified: checked(values.email_verified),
    name: orNull(values.name),
    roles: listField(values.roles),
    mfa_required: checked(values.mfa_required),
  };
}

/** The console asks for a new password twice (a typo would lock the person out); the rest is the schema's. */
function confirmationErrors(values: { password: string; password_confirmation: string }): FieldError[] {
  return values.password === values.password_confirmation ? [] : [{ pointer: '#/password_confirmation', detail: 'does not match the password' }];
}

/** The service's errors, or the whole message when it names no field. */
function errorsOf(error: ManagementError): FieldError[] {
  return error.errors !== undefined && error.errors.length > 0 ? [...error.errors] : [{ pointer: '#', detail: error.message }];
}

function one(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function doneMessage(ctx: ParameterizedContext): string | undefined {
  const done = one(ctx.query['done']);
  return done !== undefined && Object.hasOwn(DONE_MESSAGES, done) ? DONE_MESSAGES[done as Done] : undefined;
}

/** The search box: anything with an `@` is the start of an email address, the rest the start of a username. */
export function searchFilter(q: string): { username?: string; email?: string } {
  const text = q.trim();
  if (text === '') return {};
  return text.includes('@') ? { email: text } : { username: text };
}

function when(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

export function usersArea(management: Pick<ManagementServices, 'users'>): ConsoleAreaModule {
  const { users } = management;

  return {
    id: 'users',
    register(router: Router, kit: ConsoleKit) {
      // Matched below ISSUER's path, which a proxy in front strips; links use listUrl.
      const path = `${CONSOLE_PATH}/users`;
      const listUrl = `${kit.consoleUrl}/users`;
      const userUrl = (id: string) => `${listUrl}/${encodeURIComponent(id)}`;
      const passkeyUrl = (id: string, passkeyId: string) => `${userUrl(id)}/passkeys/${encodeURIComponent(passkeyId)}/remove`;
      const guard = kit.requireArea('users');

      function me(ctx: ParameterizedContext): string | undefined {
        return (ctx.state as { console?: ConsoleState }).console?.person.id;
      }

      function redirect(ctx: ParameterizedContext, location: string): void {
        ctx.set('Cache-Control', 'no-store');
        ctx.status = 303;
        ctx.redirect(location);
      }

      function notFound(ctx: ParameterizedContext, message = 'No user with that id. They may have been deleted.'): void {
        kit.render(ctx, 'console-user-missing', { title: 'User not found', message, listUrl }, 404);
      }

      /** The person, or undefined after answering 404. */
      async function find(ctx: ParameterizedContext, id: string): Promise<UserResponse | undefined> {
        try {
          return await users.get(id);
        } catch (error) {
          if (!(error instanceof NotFound)) throw error;
          notFound(ctx);
          return undefined;
        }
      }

      function crumbs(user: UserResponse) {
        return [
          { title: 'Users', href: listUrl },
          { title: user.username, href: userUrl(user.id) },
        ];
      }

      // The list and the search.

      router.get(path, guard, async function listUsers(ctx) {
        const rawQ = ctx.query['q'];
        const q = one(rawQ) ?? '';
        const cursor = one(ctx.query['cursor']);
        const common = { title: 'Users', action: listUrl, q, newUrl: `${listUrl}/new`, message: doneMessage(ctx) };
        const refused = (errors: { q?: string; general?: string }) =>
          kit.render(ctx, 'console-users', { ...common, title: 'Error: Users', qError: errors.q, general: errors.general, items: [] }, 400);
        if (Array.isArray(rawQ)) return refused({ q: 'Give one search term.' });
        const filter = searchFilter(q);
        const parsed = userListQuery.safeParse({ limit: PAGE_SIZE, ...filter, ...(cursor === undefined || cursor === '' ? {} : { cursor }) });
        if (!parsed.success) {
          const onCursor = parsed.error.issues.some((issue) => issue.path[0] === 'cursor');
          return onCursor ? refused({ general: 'The “Next page” link is not valid; start again from the first page.' }) : refused({ q: parsed.error.issues[0]?.message ?? 'not a valid search' });
        }
        const page = await users.list(parsed.data).catch((error: unknown) => {
          // A cursor this server did not make (decodeCursor refuses it before any query).
          if (error instanceof ValidationFailed) return undefined;
          throw error;
        });
        if (page === undefined) return refused({ general: 'The “Next page” link is not valid; start again from the first page.' });
        const keep: Record<string, string> = q.trim() === '' ? {} : { q: q.trim() };
        const next = page.next_cursor === null ? undefined : `${listUrl}?${new URLSearchParams({ ...keep, cursor: page.next_cursor }).toString()}`;
        const firstUrl = parsed.data.cursor === undefined ? undefined : `${listUrl}${q.trim() === '' ? '' : `?${new URLSearchParams(keep).toString()}`}`;
        kit.render(ctx, 'console-users', {
          ...common,
          searched: filter.username !== undefined ? 'username' : filter.email !== undefined ? 'email' : undefined,
          items: page.items.map((user) => ({ ...user, href: userUrl(user.id) })),
          next,
          firstUrl,
        });
      });

      // Create.

      function renderCreate(ctx: ParameterizedContext, values: Values<CreateField>, status = 200, errors: FormErrors<CreateField> = NO_ERRORS): void {
        kit.render(
          ctx,
          'console-user-new',
          {
            title: hasErrors(errors) ? 'Error: New user' : 'New user',
            action: listUrl,
            listUrl,
            // A password is never sent back to the browser; it is typed again.
            values: { ...values, password: '', password_confirmation: '' },
            errors: errors.fields,
            general: errors.general,
            passwordMin: PASSWORD_MIN_LENGTH,
            passwordMax: PASSWORD_MAX_LENGTH,
          },
          status,
        );
      }

      router.get(`${path}/new`, guard, function newUser(ctx) {
        renderCreate(ctx, valuesOf(CREATE_FIELDS, {}));
      });

      router.post(path, guard, async function createUser(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const values = valuesOf(CREATE_FIELDS, form);
        const body = {
          username: values.username,
          password: values.password,
          email: orNull(values.email),
          email_verified: checked(values.email_verified),
          name: orNull(values.name),
          roles: listField(values.roles),
          mfa_required: checked(values.mfa_required),
          disabled: checked(values.disabled),
        };
        const errors = confirmationErrors(values);
        let status = 400;
        try {
          const parsed = parseOrThrow(createUserBody, body);
          if (errors.length === 0) {
            const created = await users.create(parsed, kit.audit(ctx));
            return redirect(ctx, `${userUrl(created.id)}?done=created`);
          }
        } catch (error) {
          if (!(error instanceof ManagementError)) throw error;
          status = ERROR_STATUS[error.code];
          errors.push(...errorsOf(error));
        }
        renderCreate(ctx, values, status, errorsByField(errors, CREATE_FIELDS, body));
      });

      // A person's page: what is stored, the edit form, the actions.

      async function renderUser(
        ctx: ParameterizedContext,
        user: UserResponse,
        form: { values: Values<EditField>; version: string },
        status = 200,
        errors: FormErrors<EditField> = NO_ERRORS,
      ): Promise<void> {
        const base = userUrl(user.id);
        const passkeys = await users.listPasskeys(user.id).catch((error: unknown) => {
          // Deleted between the two reads: the page still shows what was read.
          if (error instanceof NotFound) return { items: [] };
          throw error;
        });
        kit.render(
          ctx,
          'console-user',
          {
            title: hasErrors(errors) ? `Error: User ${user.username}` : `User ${user.username}`,
            crumbs: [{ title: 'Users', href: listUrl }],
            user,
            self: user.id === me(ctx),
            created: when(user.created_at),
            updated: when(user.updated_at),
            passwordChanged: when(user.password_changed_at),
            identities: user.identities.map((identity) => ({
              ...identity,
              linked: when(identity.linked_at),
              lastLogin: identity.last_login_at === null ? undefined : when(identity.last_login_at),
              unlinkHref: `${base}/identities/${encodeURIComponent(identity.provider_id)}/unlink`,
            })),
            passkeys: passkeys.items.map((passkey) => ({
              ...passkey,
              created: when(passkey.created_at),
              lastUsed: passkey.last_used_at === null ? undefined : when(passkey.last_used_at),
              synced: passkey.device_type === 'multi_device',
              removeHref: passkeyUrl(user.id, passkey.id),
            })),
            action: base,
            values: form.values,
            version: form.version,
            errors: errors.fields,
            general: errors.general,
            message: status === 200 ? doneMessage(ctx) : undefined,
            passwordHref: `${base}/password`,
            statusHref: `${base}/${user.disabled ? 'enable' : 'disable'}`,
            secondFactorHref: `${base}/second-factor`,
            deleteHref: `${base}/delete`,
            listUrl,
          },
          status,
        );
      }

      router.get(`${path}/:id`, guard, async function showUser(ctx) {
        const user = await find(ctx, ctx.params['id'] ?? '');
        if (user === undefined) return;
        await renderUser(ctx, user, { values: editValuesOf(user), version: versionOf(user) });
      });

      router.post(`${path}/:id`, guard, async function updateUser(ctx) {
        const id = ctx.params['id'] ?? '';
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const current = await find(ctx, id);
        if (current === undefined) return;
        const values = valuesOf(EDIT_FIELDS, form);
        // A form without its version cannot prove it saw the current values: treated as stale.
        const version = form['version'] ?? '';
        const body = editBody(values);
        try {
          const patch = parseOrThrow(patchUserBody, body);
          await users.update(id, patch, kit.audit(ctx), version === '' ? '"none"' : version);
          return redirect(ctx, `${userUrl(id)}?done=updated`);
        } catch (error) {
          if (error instanceof PreconditionFailed) {
            // Nothing was saved: the current values, the current version, and why.
            const fresh = await find(ctx, id);
            if (fresh === undefined) return;
            return await renderUser(ctx, fresh, { values: editValuesOf(fresh), version: versionOf(fresh) }, ERROR_STATUS[error.code], { fields: {}, general: [STALE_FORM_MESSAGE] });
          }
          if (error instanceof NotFound) return notFound(ctx);
          if (!(error instanceof ManagementError)) throw error;
          // The version the form was read at stays, so fixing a typo does not hide someone else's change.
          await renderUser(ctx, current, { values, version }, ERROR_STATUS[error.code], errorsByField(errorsOf(error), EDIT_FIELDS, body));
        }
      });

      // A new password, through the same update (and password rules) as the admin API's `password`.

      function renderPassword(ctx: ParameterizedContext, user: UserResponse, status = 200, errors: FormErrors<PasswordField> = NO_ERRORS): void {
        kit.render(
          ctx,
          'console-user-password',
          {
            title: hasErrors(errors) ? `Error: New password for ${user.username}` : `New password for ${user.username}`,
            crumbs: crumbs(user),
            user,
            self: user.id === me(ctx),
            action: `${userUrl(user.id)}/password`,
            cancelHref: userUrl(user.id),
            errors: errors.fields,
            general: errors.general,
            passwordMin: PASSWORD_MIN_LENGTH,
            passwordMax: PASSWORD_MAX_LENGTH,
          },
          status,
        );
      }

      router.get(`${path}/:id/password`, guard, async function newPasswordForm(ctx) {
        const user = await find(ctx, ctx.params['id'] ?? '');
        if (user !== undefined) renderPassword(ctx, user);
      });

      router.post(`${path}/:id/password`, guard, async function setPassword(ctx) {
        const id = ctx.params['id'] ?? '';
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const user = await find(ctx, id);
        if (user === undefined) return;
        const values = valuesOf(PASSWORD_FIELDS, form);
        const body = { password: values.password };
        const errors = confirmationErrors(values);
        let status = 400;
        try {
          const patch = parseOrThrow(patchUserBody, body);
          if (errors.length === 0) {
            await users.update(id, patch, kit.audit(ctx));
            return redirect(ctx, `${userUrl(id)}?done=password`);
          }
        } catch (error) {
          if (error instanceof NotFound) return notFound(ctx);
          if (!(error instanceof ManagementError)) throw error;
          status = ERROR_STATUS[error.code];
          errors.push(...errorsOf(error));
        }
        renderPassword(ctx, user, status, errorsByField(errors, PASSWORD_FIELDS, body));
      });

      // The destructive actions, each behind a confirmation page.

      function renderConfirm(
        ctx: ParameterizedContext,
        user: UserResponse,
        confirm: { title: string; button: string; consequences: readonly string[]; self: string; action: string; what?: string },
        error?: string,
        status = 200,
      ): void {
        kit.render(
          ctx,
          'console-user-confirm',
          {
            title: confirm.title,
            crumbs: crumbs(user),
            user,
            heading: `${confirm.title} ${user.username}?`,
            what: confirm.what,
            consequences: confirm.consequences,
            selfWarning: user.id === me(ctx) ? confirm.self : undefined,
            button: confirm.button,
            action: confirm.action,
            cancelHref: userUrl(user.id),
            error,
          },
          status,
        );
      }

      /** Changes the person as `action` says; the service's refusals are ManagementErrors. */
      async function perform(ctx: ParameterizedContext, action: Action, id: string): Promise<void> {
        const audit = kit.audit(ctx);
        if (action === 'disable') await users.update(id, { disabled: true }, audit);
        else if (action === 'enable') await users.update(id, { disabled: false }, audit);
        else if (action === 'second-factor') await users.resetSecondFactor(id, audit);
        else await users.delete(id, audit);
      }

      for (const action of Object.keys(ACTIONS) as Action[]) {
        const spec = ACTIONS[action];
        const confirmOf = (id: string) => ({ ...spec, action: `${userUrl(id)}/${action}` });

        router.get(`${path}/:id/${action}`, guard, async function confirmUserAction(ctx) {
          const user = await find(ctx, ctx.params['id'] ?? '');
          if (user !== undefined) renderConfirm(ctx, user, confirmOf(user.id));
        });

        router.post(`${path}/:id/${action}`, guard, async function userAction(ctx) {
          const id = ctx.params['id'] ?? '';
          const form = await kit.form(ctx);
          if (form === undefined) return;
          const user = await find(ctx, id);
          if (user === undefined) return;
          try {
            await perform(ctx, action, id);
          } catch (error) {
            if (error instanceof NotFound) return notFound(ctx);
            if (!(error instanceof ManagementError)) throw error;
            return renderConfirm(ctx, user, confirmOf(id), error.message, ERROR_STATUS[error.code]);
          }
          redirect(ctx, action === 'delete' ? `${listUrl}?done=deleted` : `${userUrl(id)}?done=${spec.done}`);
        });
      }

      const unlink = {
        title: 'Unlink identity of',
        button: 'Unlink this identity',
        consequences: [
          'They can no longer sign in through this identity provider as this user.',
          'Their next sign-in there is matched again as a first one: by verified email or as a new user, where the provider allows it.',
        ],
        self: 'This is you. If you sign in to the console through this provider, that sign-in will no longer find you.',
      };

      async function findIdentity(ctx: ParameterizedContext, id: string, providerId: string) {
        const user = await find(ctx, id);
        if (user === undefined) return undefined;
        const identity = user.identities.find((candidate) => candidate.provider_id === providerId);
        if (identity === undefined) {
          notFound(ctx, 'The user has no identity at that provider. It may have been unlinked already.');
          return undefined;
        }
        const confirm = {
          ...unlink,
          what: `${identity.provider_name}, subject ${identity.subject}`,
          action: `${userUrl(user.id)}/identities/${encodeURIComponent(identity.provider_id)}/unlink`,
        };
        return { user, identity, confirm };
      }

      router.get(`${path}/:id/identities/:providerId/unlink`, guard, async function confirmUnlink(ctx) {
        const found = await findIdentity(ctx, ctx.params['id'] ?? '', ctx.params['providerId'] ?? '');
        if (found !== undefined) renderConfirm(ctx, found.user, found.confirm);
      });

      router.post(`${path}/:id/identities/:providerId/unlink`, guard, async function unlinkIdentity(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const found = await findIdentity(ctx, ctx.params['id'] ?? '', ctx.params['providerId'] ?? '');
        if (found === undefined) return;
        try {
          await users.unlinkIdentity(found.user.id, found.identity.provider_id, kit.audit(ctx));
        } catch (error) {
          if (error instanceof NotFound) return notFound(ctx, 'The user has no identity at that provider. It may have been unlinked already.');
          if (!(error instanceof ManagementError)) throw error;
          return renderConfirm(ctx, found.user, found.confirm, error.message, ERROR_STATUS[error.code]);
        }
        redirect(ctx, `${userUrl(found.user.id)}?done=unlinked`);
      });

      // One passkey (SPEC §4), through the same removal as DELETE /admin/v1/users/{id}/passkeys/{passkey_id}.

      const removePasskey = {
        title: 'Remove passkey of',
        button: 'Remove this passkey',
        consequences: [
          'It no longer signs them in, as a second factor or without a password.',
          'Their sessions, grants and refresh tokens end at once, on every client.',
          'If it is their last second factor, their recovery codes go too, and the next sign-in enrolls again if one is required.',
        ],
        self: 'This is you. Removing one of your own passkeys ends this console session.',
      };

      function passkeyMissing(ctx: ParameterizedContext): void {
        notFound(ctx, 'The user has no passkey with that id. It may have been removed already.');
      }

      async function findPasskey(ctx: ParameterizedContext, id: string, passkeyId: string) {
        const user = await find(ctx, id);
        if (user === undefined) return undefined;
        const passkey: PasskeyResponse | undefined = (await users.listPasskeys(user.id)).items.find((candidate) => candidate.id === passkeyId);
        if (passkey === undefined) {
          passkeyMissing(ctx);
          return undefined;
        }
        const confirm = { ...removePasskey, what: `“${passkey.name}”, created ${when(passkey.created_at)}`, action: passkeyUrl(user.id, passkey.id) };
        return { user, passkey, confirm };
      }

      router.get(`${path}/:id/passkeys/:passkeyId/remove`, guard, async function confirmRemovePasskey(ctx) {
        const found = await findPasskey(ctx, ctx.params['id'] ?? '', ctx.params['passkeyId'] ?? '');
        if (found !== undefined) renderConfirm(ctx, found.user, found.confirm);
      });

      router.post(`${path}/:id/passkeys/:passkeyId/remove`, guard, async function removeUserPasskey(ctx) {
        const form = await kit.form(ctx);
        if (form === undefined) return;
        const found = await findPasskey(ctx, ctx.params['id'] ?? '', ctx.params['passkeyId'] ?? '');
        if (found === undefined) return;
        try {
          await users.removePasskey(found.user.id, found.passkey.id, kit.audit(ctx));
        } catch (error) {
          if (error instanceof NotFound) return passkeyMissing(ctx);
          if (!(error instanceof ManagementError)) throw error;
          return renderConfirm(ctx, found.user, found.confirm, error.message, ERROR_STATUS[error.code]);
        }
        redirect(ctx, `${userUrl(found.user.id)}?done=passkey-removed`);
      });
    },
  };
}
