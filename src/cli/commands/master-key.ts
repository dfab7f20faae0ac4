import { EXIT, printJson, type Command } from '../command.js';
import { withServices } from '../context.js';

export const masterKeyCommands: readonly Command[] = [
  {
    path: ['master-key', 'rewrap'],
    summary: 're-seal every secret at rest with MASTER_KEY',
    description: [
      'After a MASTER_KEY rotation: set the new key as MASTER_KEY and the old one in MASTER_KEY_PREVIOUS (comma-separated, several allowed), then run this. It opens every sealed value in the database (private signing keys, TOTP secrets, server secrets) and seals it again with MASTER_KEY, in one transaction, and prints how many it re-sealed. Afterwards MASTER_KEY_PREVIOUS can be dropped. Running it again re-seals nothing.',
    ],
    examples: ['MASTER_KEY=$NEW MASTER_KEY_PREVIOUS=$OLD gatehouse master-key rewrap', 'gatehouse master-key rewrap --json'],
    async run(invocation) {
      const report = await withServices(invocation.output, ({ masterKey, audit }) => masterKey.rewrap(audit));
      if (invocation.output.json) {
        printJson(invocation.output, { key_id: report.keyId, resealed: report.resealed, unchanged: report.unchanged, by_table: report.byTable });
      } else {
        const tables = Object.entries(report.byTable)
          .map(([table, count]) => `${table} ${count}`)
          .join(', ');
        invocation.output.out(`re-sealed ${report.resealed} values with master key ${report.keyId} (${tables}); ${report.unchanged} were sealed with it already\n`);
      }
      return EXIT.ok;
    },
  },
];
