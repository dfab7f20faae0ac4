import { parseOrThrow } from '../../management/errors.js';
import { createClientBody } from '../../management/clients/schema.js';
import { ADMIN_SCOPES, adminResourceIdentifier } from '../../management/admin-scopes.js';
import { loadConfig } from '../../config.js';
import { EXIT, type Command } from '../command.js';
import { withServices } from '../context.js';
import { given } from '../input.js';
import { printCredentials } from './clients.js';

export const adminClientCommands: readonly Command[] = [
  {
    path: ['admin-client', 'create'],
    summary: 'create an admin API client; prints client_secret once',
    description: [
      `Registers a client for the admin API: the client_credentials grant, every admin scope (${ADMIN_SCOPES.join(', ')}) and the resource <ISSUER>/admin. It goes through the same code path as clients create, so it is validated and audited (client.created, actor "cli") like any other client.`,
      "ISSUER must be the server's: the admin resource is named after it. Prints client_id and client_secret; the secret is shown this once.",
    ],
    options: {
      name: { type: 'string', value: 'NAME', field: 'client_name', help: 'client_name (default: "Gatehouse admin (CLI)")' },
    },
    examples: [
      'gatehouse admin-client create --name "deploy pipeline"',
      'ISSUER=https://id.example.com gatehouse admin-client create --json > admin-client.json',
    ],
    async run(invocation) {
      // Validated before the database is opened, like every other command's input.
      const body: Record<string, unknown> = {
        client_name: 'Gatehouse admin (CLI)',
        grant_types: ['client_credentials'],
        scope: ADMIN_SCOPES.join(' '),
        allowed_resources: [adminResourceIdentifier(loadConfig().issuer)],
      };
      given(body, 'client_name', invocation.string('name'));
      const definition = parseOrThrow(createClientBody, body, 'input');
      const client = await withServices(invocation.output, ({ services, audit }) => services.clients.create(definition, audit));
      printCredentials(invocation.output, client);
      return EXIT.ok;
    },
  },
];
