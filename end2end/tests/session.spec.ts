// Sessions: cookie flags, a new id at every sign-in, and signing out.
import { test, expect } from '@playwright/test';
import { loginAs } from './helpers';

const sessionCookie = async (context: import('@playwright/test').BrowserContext) =>
  (await context.cookies()).find((c) => c.name === 'slipway_session');

test('the session cookie is HttpOnly and SameSite=Lax, and a sign-in replaces its id', async ({ page, context }) => {
  await loginAs(page, 'alice');
  const first = await sessionCookie(context);
  expect(first, 'a session cookie after sign-in').toBeTruthy();
  expect(first?.httpOnly).toBe(true);
  expect(first?.sameSite).toBe('Lax');
  await loginAs(page, 'bob');
  const second = await sessionCookie(context);
  expect(second?.value).toBeTruthy();
  expect(second?.value).not.toBe(first?.value);
});

test('a wrong password is refused with a message that does not say which part was wrong', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('User name').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('not-her-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('the user name or the password is wrong');
  await expect(page).toHaveURL(/\/login/);
});

test('signing out ends the session', async ({ page }) => {
  await loginAs(page, 'alice');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/requests');
  await expect(page).toHaveURL(/\/login\?next=/);
});
