import { parseOrThrow } from '../../management/errors.js';
import type { PasskeyResponse, UserResponse } from '../../management/users/presenter.js';
import { createUserBody, patchUserBody, userListQuery } from '../../management/users/schema.js';
import { cliPassword } from '../../config.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, record, table, type Command, type Output } from '../command.js';
import { withServices } from '../context.js';
import { given } from '../input.js';
import { readPassword } from '../password.js';

function userRow(user: UserResponse): string[] {
  return [user.id, user.username, user.email ?? '', user.roles.join(','), user.disabled ? 'yes' : 'no', user.mfa_required ? 'yes' : 'no', user.mfa_enrolled ? 'yes' : 'no'];
}

function printUser(output: Output, user: UserResponse): void {
  if (output.json) printJson(output, user);
  else output.out(record(user));
}

function passkeyRow(passkey: PasskeyResponse): string[] {
  return [passkey.id, passkey.name, passkey.device_type, passkey.backed_up ? 'yes' : 'no', passkey.created_at, passkey.last_used_at ?? 'never'];
}

const USER_ID = { min: 1, max: 1 } as const;

export const userCommands: readonly Command[] = [
  {
    path: ['users', 'create'],
    usage: '--username USERNAME [options]',
    fieldSources: { password: 'GATEHOUSE_PASSWORD or stdin' },
    summary: 'create a person (password from GATEHOUSE_PASSWORD or stdin)',
    description: [
      'Creates a person, validated exactly as POST /admin/v1/users validates it; the password is stored as argon2id.',
      'The password is never a flag (flags end up in shell history and in ps): it is read from the environment variable GATEHOUSE_PASSWORD, else from stdin (one line; its line ending is dropped), else prompted for without echo when stdin is a terminal. It must be 12 to 1024 characters.',
    ],
    options: {
      username: { type: 'string', value: 'USERNAME', field: 'username', help: 'what the person types to sign in (letters, digits, . _ - @ +; compared ignoring case)' },
      email: { type: 'string', value: 'EMAIL', field: 'email', help: 'email address' },
      'email-verified': { type: 'boolean', field: 'email_verified', help: 'the email address is known to be theirs' },
      name: { type: 'string', value: 'NAME', field: 'name', help: 'full name, as the `name` claim' },
      role: { type: 'string', multiple: true, value: 'ROLE', field: 'roles', help: 'a role, as the `roles` claim' },
      'mfa-required': { type: 'boolean', field: 'mfa_required', help: 'a second factor at every sign-in (they enroll one at the next sign-in)' },
      disabled: { type: 'boolean', field: 'disabled', help: 'create the account disabled' },
    },
    examples: [
      'GATEHOUSE_PASSWORD="$(pass show gatehouse/alice)" gatehouse users create --username alice --email alice@example.com --role admin',
      'gatehouse users create --username bob --mfa-required --json < bob.password',
      'gatehouse users create --username carol          # prompts for the password twice',
    ],
    async run(invocation) {
      const body: Record<string, unknown> = {};
      given(body, 'username', invocation.string('username'));
      given(body, 'email', invocation.string('email'));
      given(body, 'name', invocation.string('name'));
      given(body, 'roles', invocation.strings('role'), (list) => list.length > 0);
      if (invocation.flag('email-verified')) body['email_verified'] = true;
      if (invocation.flag('mfa-required')) body['mfa_required'] = true;
      if (invocation.flag('disabled')) body['disabled'] = true;
      body['password'] = await readPassword(cliPassword());
      const definition = parseOrThrow(createUserBody, body, 'input');

      const user = await withServices(invocation.output, ({ services, audit }) => services.users.create(definition, audit));
      printUser(invocation.output, user);
      return EXIT.ok;
    },
  },
  {
    path: ['users', 'list'],
    summary: 'list people',
    description: ['Lists people in the order they were created, as GET /admin/v1/users does.'],
    options: {
      username: { type: 'string', value: 'PREFIX', field: 'username', help: 'only people whose username starts with PREFIX (ignoring case)' },
      email: { type: 'string', value: 'PREFIX', field: 'email', help: 'only people whose email starts with PREFIX (ignoring case)' },
      ...PAGE_OPTIONS,
    },
    examples: ['gatehouse users list', 'gatehouse users list --username ali --json'],
    async run(invocation) {
      const query: Record<string, string> = pageQueryOf(invocation);
      given(query, 'username', invocation.string('username'));
      given(query, 'email', invocation.string('email'));
      const parsed = parseOrThrow(userListQuery, query, 'input');
      const page = await withServices(invocation.output, ({ services }) => services.users.list(parsed));
      if (invocation.output.json) printJson(invocation.output, page);
      else {
        invocation.output.out(table(['ID', 'USERNAME', 'EMAIL', 'ROLES', 'DISABLED', 'MFA_REQUIRED', 'MFA_ENROLLED'], page.items.map(userRow)));
        pageHint(invocation.output, page.next_cursor);
      }
      return EXIT.ok;
    },
  },
  {
    path: ['users', 'disable'],
    args: 'USER_ID',
    positionals: USER_ID,
    summary: 'disable a person and end their sessions and grants',
    description: [
      'Disables the person (PATCH /admin/v1/users/{id} with disabled: true): they can no longer sign in, and their sessions, grants and refresh tokens are revoked at once. Prints the user.',
    ],
    examples: ['gatehouse users disable 0b6f3c1e-8f4a-4d2b-9a51-2f0c8d7e6a13'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      const patch = parseOrThrow(patchUserBody, { disabled: true }, 'input');
      const user = await withServices(invocation.output, ({ services, audit }) => services.users.update(id, patch, audit));
      printUser(invocation.output, user);
      return EXIT.ok;
    },
  },
  {
    path: ['users', 'reset-mfa'],
    args: 'USER_ID',
    positionals: USER_ID,
    summary: "remove a person's second factor and recovery codes",
    description: [
      "Removes the person's TOTP second factor and recovery codes (DELETE /admin/v1/users/{id}/mfa). If a second factor is required for them, they enroll a new one at their next sign-in. Prints the user.",
    ],
    examples: ['gatehouse users reset-mfa 0b6f3c1e-8f4a-4d2b-9a51-2f0c8d7e6a13'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      const user = await withServices(invocation.output, async ({ services, audit }) => {
        await services.users.resetSecondFactor(id, audit);
        return services.users.get(id);
      });
      printUser(invocation.output, user);
      return EXIT.ok;
    },
  },
  {
    path: ['users', 'passkeys'],
    args: 'USER_ID',
    positionals: USER_ID,
    summary: "list a person's passkeys",
    description: ["Lists the person's passkeys, oldest first, as GET /admin/v1/users/{id}/passkeys does: the credential id, the name they gave it, whether it may sync (multi_device) and is backed up, when it was created and last used. Never a public key."],
    examples: ['gatehouse users passkeys 0b6f3c1e-8f4a-4d2b-9a51-2f0c8d7e6a13', 'gatehouse users passkeys 0b6f3c1e-8f4a-4d2b-9a51-2f0c8d7e6a13 --json'],
    async run(invocation) {
      const id = invocation.positionals[0] ?? '';
      const list = await withServices(invocation.output, ({ services }) => services.users.listPasskeys(id));
      if (invocation.output.json) printJson(invocation.output, list);
      else invocation.output.out(table(['ID', 'NAME', 'DEVICE_TYPE', 'BACKED_UP', 'CREATED_AT', 'LAST_USED_AT'], list.items.map(passkeyRow)));
      return EXIT.ok;
    },
  },
  {
    path: ['users', 'remove-passkey'],
    args: 'USER_ID PASSKEY_ID',
    positionals: { min: 2, max: 2 },
    summary: "remove one of a person's passkeys and end their sessions and grants",
    description: [
      "Removes one passkey (DELETE /admin/v1/users/{id}/passkeys/{passkey_id}); PASSKEY_ID is its credential id as `users passkeys` lists it. Like a removed second factor, the person's sessions, grants and refresh tokens end at once; when it was their last second factor, their recovery codes go too. Prints the user.",
    ],
    examples: ['gatehouse users remove-passkey 0b6f3c1e-8f4a-4d2b-9a51-2f0c8d7e6a13 KEbWNCc7NgaYnUyrNeFGX9_3Y-8oJ3KwzjnaiD1d1LVTxR7v3CaKfCz2Vy_g_MHSh7yJ8yL0Pxg6jo_o0hYiew'],
    async run(invocation) {
      const [id = '', passkeyId = ''] = invocation.positionals;
      const user = await withServices(invocation.output, async ({ services, audit }) => {
        await services.users.removePasskey(id, passkeyId, audit);
        return services.users.get(id);
      });
      printUser(invocation.output, user);
      return EXIT.ok;
    },
  },
];
