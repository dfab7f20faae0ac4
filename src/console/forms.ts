import type { FieldError, ManagementError } from '../management/errors.js';
import { etagOf } from '../management/etag.js';

/**
 * What every console form shares (SPEC §11): forms are parsed into the admin API's body shape and
 * judged by its schemas; these helpers put each error next to its field, carry the version a
 * form was read at (the admin API's ETag) so a change by someone else in between is refused
 * with a conflict message instead of overwritten, and map refusals to statuses.
 */

/** The errors of a form, by field, and the rest for the top of the form. */
export interface FormErrors<Field extends string> {
  readonly fields: Partial<Record<Field, string[]>>;
  readonly general: string[];
}

export const NO_ERRORS: FormErrors<never> = { fields: {}, general: [] };

/**
 * Each error next to its field: `#/scopes/0` belongs to `scopes` (and names the item it is
 * about, when the body holds a string there); `#` and unknown pointers go to the whole form.
 * `aliases` maps nested pointers' first segment onto a form field where they differ.
 */
export function errorsByField<Field extends string>(
  errors: readonly FieldError[],
  fields: readonly Field[],
  body: Record<string, unknown>,
  aliases: Readonly<Record<string, Field>> = {},
): FormErrors<Field> {
  const byField: Partial<Record<Field, string[]>> = {};
  const general: string[] = [];
  for (const error of errors) {
    const [name = '', index] = error.pointer.replace(/^#\/?/, '').split('/');
    const field = fields.find((candidate) => candidate === name) ?? aliases[name];
    if (field === undefined) {
      general.push(error.detail);
      continue;
    }
    const items = body[name];
    const item = index !== undefined && Array.isArray(items) ? (items as unknown[])[Number(index)] : undefined;
    (byField[field] ??= []).push(typeof item === 'string' ? `“${item}”: ${error.detail}` : error.detail);
  }
  return { fields: byField, general };
}

/** True when a form came back with anything to show. */
export function hasErrors(errors: FormErrors<string>): boolean {
  return errors.general.length > 0 || Object.keys(errors.fields).length > 0;
}

/** The version an edit form was read at: the admin API's ETag of the resource as it then was. */
export function versionOf(representation: unknown): string {
  return etagOf(representation);
}

/** The conflict message of a stale form (the service refused it with 412). */
export const STALE_FORM_MESSAGE =
  'Someone else changed this while you were editing it. Nothing was saved: the form now shows the current values; make your change again.';

/** HTTP status of a refused change, for the page that explains it. */
export const ERROR_STATUS: Record<ManagementError['code'], number> = {
  validation_failed: 400,
  not_found: 404,
  conflict: 409,
  precondition_failed: 409,
  forbidden: 403,
};

/** Space- or line-separated values of a text field, empty entries dropped. */
export function listField(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter((item) => item !== '');
}

/** A checkbox: present (any value) or not. */
export function checked(value: string | undefined): boolean {
  return value !== undefined && value !== '';
}

/** One query parameter's value, or undefined when absent or repeated. */
export function queryValue(value: string | string[] | undefined, maxLength = 200): string | undefined {
  return typeof value === 'string' && value.length <= maxLength ? value : undefined;
}

/**
 * The message a redirect after a change asks for (`?done=<key>`): only one of `messages`, so the
 * query string can never put words on the page.
 */
export function doneMessage<Key extends string>(messages: Readonly<Record<Key, string>>, value: string | string[] | undefined): string | undefined {
  const key = queryValue(value);
  return key !== undefined && Object.hasOwn(messages, key) ? messages[key as Key] : undefined;
}

/** A list page's "Next page" and "First page" links, from the cursor it was read at and the service's next cursor. */
export function pageLinks(listUrl: string, cursor: string | undefined, nextCursor: string | null): { next: string | undefined; firstUrl: string | undefined } {
  return {
    next: nextCursor === null ? undefined : `${listUrl}?${new URLSearchParams({ cursor: nextCursor }).toString()}`,
    firstUrl: cursor === undefined || cursor === '' ? undefined : listUrl,
  };
}
