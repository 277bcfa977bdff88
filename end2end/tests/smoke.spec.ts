// Smoke test: the server is up, the login form renders, a demo user can sign in.
import { test, expect } from '@playwright/test';
import { login, USERS } from './helpers';

test('healthz answers 200', async ({ request }) => {
  const res = await request.get('/healthz');
  expect(res.status()).toBe(200);
});

test('/login shows the sign-in form', async ({ page }) => {
  await page.goto('/login');
  await expect(page.getByLabel('User name')).toBeVisible();
  await expect(page.getByLabel('Password', { exact: true })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
});

test('alice signs in and sees the catalog', async ({ page }) => {
  await login(page, USERS.alice.user, USERS.alice.password);
  await expect(page.getByRole('heading', { name: 'Catalog' }).first()).toBeVisible();
});
