import type { ParameterizedContext } from 'koa';
import getRawBody from 'raw-body';

export class FormError extends Error {
  readonly status: 400 | 413 | 415;

  constructor(status: FormError['status'], message: string) {
    super(message);
    this.name = 'FormError';
    this.status = status;
  }
}

/**
 * Reads an application/x-www-form-urlencoded body (the hosted pages post no other kind).
 * A field sent twice is refused rather than guessed at.
 */
export async function readForm(ctx: ParameterizedContext, limit = '16kb'): Promise<Record<string, string>> {
  if (ctx.is('application/x-www-form-urlencoded') === false) throw new FormError(415, 'forms must be application/x-www-form-urlencoded');
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit, encoding: 'utf-8', length: ctx.get('Content-Length') || undefined });
  } catch (error) {
    if ((error as { type?: string }).type === 'entity.too.large') throw new FormError(413, 'the form is too large');
    throw new FormError(400, 'the form could not be read');
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(text)) {
    if (Object.hasOwn(fields, name)) throw new FormError(400, `the field ${name} was sent twice`);
    fields[name] = value;
  }
  return fields;
}
