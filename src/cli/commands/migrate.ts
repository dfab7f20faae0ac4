import { migrate } from '../../db/migrator.js';
import { EXIT, printJson, type Command } from '../command.js';
import { withDatabase } from '../context.js';

export const migrateCommand: Command = {
  path: ['migrate'],
  summary: 'apply pending database migrations and exit',
  description: [
    'Applies the numbered SQL migrations the database lacks, in order, each in a transaction, under an advisory lock (several processes at once apply them once). The server does the same at start; this runs them alone, e.g. before a rolling deploy.',
  ],
  examples: ['gatehouse migrate', 'DATABASE_URL=postgres://gatehouse@db/gatehouse gatehouse migrate --json'],
  async run({ output }) {
    const report = await withDatabase((db) => migrate(db));
    if (output.json) printJson(output, { applied: report.applied, current: report.current });
    else {
      output.out(
        report.applied.length === 0
          ? `database is current (migration ${report.current})\n`
          : `applied ${report.applied.join(', ')}; database is at migration ${report.current}\n`,
      );
    }
    return EXIT.ok;
  },
};
