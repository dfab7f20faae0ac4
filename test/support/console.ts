import assert from 'node:assert/strict';
import type { BrowserContext, Page } from 'playwright-core';
import { totpCode } from './totp.js';

/**
 * Opens `<issuer>/console` in `context` as `username` for the first time: the password, then
 * TOTP enrollment (the console always asks for a second factor), back at the console's overview.
 */
export async function firstConsoleSignIn(context: BrowserContext, issuer: string, username: string, password: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${issuer}/console`);
  await page.waitForSelector('#username');
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('button[type="submit"]');
  await page.waitForSelector('h1:has-text("Set up two-step verification")');
  const uri = await page.getAttribute('a[href^="otpauth://"]', 'href');
  assert.ok(uri, 'the otpauth link on the enrollment page');
  await page.fill('#code', totpCode(new URL(uri).searchParams.get('secret')!, Date.now()));
  await page.keyboard.press('Enter');
  await page.waitForSelector('h1:has-text("Save your recovery codes")');
  await page.click('button:has-text("I have saved them")');
  await page.waitForURL(`${issuer}/console`);
  return page;
}
