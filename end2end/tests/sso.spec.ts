// Single sign-on: alice signs in at the OpenID Connect provider (its own login and
// consent pages) and lands in Slipway as a requester of team payments.
import { test, expect } from '@playwright/test';

const OIDC_PORT = Number(process.env.SLIPWAY_E2E_OIDC_PORT || Number(process.env.SLIPWAY_E2E_PORT || 3100) + 1000);
const ISSUER = `http://127.0.0.1:${OIDC_PORT}`;

test('alice signs in through the provider and lands as a requester of team payments', async ({ page }) => {
  await page.goto('/requests');
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByRole('link', { name: 'Sign in with Slipway test IdP' }).click();

  // The provider's own pages: login (any password in its development mode), then consent.
  await expect(page).toHaveURL(new RegExp(`^${ISSUER}/`));
  await page.locator('input[name="login"]').fill('alice');
  await page.locator('input[name="password"]').fill('her-provider-password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  const consent = page.getByRole('button', { name: 'Continue' });
  if (await consent.isVisible({ timeout: 5_000 }).catch(() => false)) {
    await consent.click();
  }

  // Back in Slipway, where she was going, signed in.
  await expect(page).toHaveURL(/127\.0\.0\.1:\d+\/requests$/);
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await expect(page.locator('header .who')).toContainText('Alice (SSO)');

  await page.goto('/account/sessions');
  // The demo user alice exists, so the provider's alice has a name of her own.
  await expect(page.getByTestId('username')).toHaveText('alice-2');
  await expect(page.getByTestId('roles')).toHaveText('requester');
  await expect(page.getByTestId('teams')).toHaveText('payments');
  await expect(page.getByTestId('session')).toHaveCount(1);
});

test('the sign-in page offers both single sign-on and the password form', async ({ page }) => {
  await page.goto('/login');
  await expect(page.getByRole('link', { name: 'Sign in with Slipway test IdP' })).toBeVisible();
  await expect(page.getByLabel('User name')).toBeVisible();
});

test('a signed-out page is a real redirect to the sign-in page', async ({ request }) => {
  const answer = await request.get('/catalog', { maxRedirects: 0 });
  expect(answer.status()).toBe(303);
  expect(answer.headers()['location']).toBe('/login?next=/catalog');
  const root = await request.get('/', { maxRedirects: 0 });
  expect(root.status()).toBe(303);
  expect(root.headers()['location']).toBe('/catalog');
});

test('a sign-in posted from another site is refused', async ({ page, request }) => {
  await page.goto('/login');
  const action = await page.locator('form:has(input[name="password"])').getAttribute('action');
  expect(action).toBeTruthy();
  const form = { username: 'alice', password: 'alice-demo-pw', next: '/catalog' };
  const forged = await request.post(action!, { form, headers: { Origin: 'http://evil.example' }, maxRedirects: 0 });
  expect(forged.status()).toBe(403);
  const own = await request.post(action!, { form, headers: { Origin: new URL(page.url()).origin }, maxRedirects: 0 });
  expect(own.status()).toBeLessThan(400);
});
