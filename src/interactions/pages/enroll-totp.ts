import QRCode from 'qrcode';
import type { PageContext, PageKit } from '../page-kit.js';

/**
 * The enrollment page (SPEC §4): the new authenticator's secret as a QR code, a link and grouped
 * text; its first code is posted to POST /interaction/:uid/second-factor, like any code. With the
 * passkey script, a passkey may be created instead (POST /interaction/:uid/passkey/register).
 */
export async function renderEnrollment(
  kit: PageKit,
  ctx: PageContext,
  view: { readonly secret: string; readonly uri: string; readonly account: string; readonly error: string | undefined; readonly passkey: boolean },
  status: number,
): Promise<void> {
  const { uid, clientName } = ctx.state;
  kit.render(
    ctx,
    'enroll',
    {
      clientName,
      action: kit.pageUrl(uid, '/second-factor'),
      ...kit.formFields(uid),
      error: view.error,
      title: 'Set up two-step verification',
      qrSvg: await QRCode.toString(view.uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }),
      uri: view.uri,
      secretGroups: view.secret.match(/.{1,4}/g) ?? [],
      account: view.account,
      issuer: new URL(view.uri).searchParams.get('issuer') ?? '',
      // SPEC §4: a passkey instead of an app, with the script; else the page says passkeys are unavailable.
      passkeysAvailable: kit.passkeysAvailable,
      passkeyScript: view.passkey,
      passkeyOptionsAction: kit.pageUrl(uid, '/passkey/options'),
      passkeyAction: kit.pageUrl(uid, '/passkey/register'),
    },
    status,
  );
}
