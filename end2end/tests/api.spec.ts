// API tokens in the portal, used against the REST API: made with scopes, shown
// once, usable as a bearer token, and dead the moment they are revoked. Also the
// API reference page, rendered from the generated OpenAPI document.
import { expect, test } from '@playwright/test';
import { loginAs } from './helpers';

test('a token made in the portal works on the API until it is revoked', async ({ page, request }) => {
  await loginAs(page, 'alice');
  await page.getByRole('link', { name: 'API tokens' }).click();
  await expect(page).toHaveURL(/\/account\/tokens$/);
  await page.getByLabel('What it is for').fill('e2e pipeline');
  await page.getByRole('checkbox', { name: /^request —/ }).check();
  await page.getByRole('button', { name: 'Create token' }).click();

  // The secret is on the page that answers the form, and in no session or row.
  await expect(page).toHaveURL(/\/account\/tokens\/new$/);
  const shown = page.getByLabel('Token');
  await expect(shown).toHaveValue(/^slw_[A-Za-z0-9]{40}$/);
  const token = await shown.inputValue();
  await page.getByRole('link', { name: 'Back to your API tokens' }).click();
  await expect(page).toHaveURL(/\/account\/tokens$/);

  const me = await request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).username).toBe('alice');

  const created = await request.post('/api/v1/requests', {
    headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': 'e2e-token-1' },
    data: { type: 'k8s-namespace', params: { name: 'from-api', team: 'payments', environment: 'prod', cpu_limit: 1, memory_limit_gi: 1 } },
  });
  expect(created.status()).toBe(201);
  const id = (await created.json()).summary.id;
  await page.goto(`/requests/${id}`);
  await expect(page.getByRole('heading', { level: 1 })).toContainText('payments-from-api-prod');

  // Shown once: a reload lists the token by its prefix only.
  await page.goto('/account/tokens');
  await expect(page.getByTestId('shown-once')).toHaveCount(0);
  await expect(page.getByText(token)).toHaveCount(0);
  const row = page.getByRole('row', { name: /e2e pipeline/ });
  await expect(row).toContainText('read, request');
  await row.getByRole('button', { name: 'Revoke e2e pipeline' }).click();
  await expect(page.getByRole('row', { name: /e2e pipeline/ })).toContainText('revoked');

  const after = await request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(after.status()).toBe(401);
  expect(after.headers()['content-type']).toContain('application/problem+json');
});

test('the API reference page lists the endpoints from the OpenAPI document', async ({ page, request }) => {
  const document = await request.get('/api/v1/openapi.json');
  expect(document.status()).toBe(200);
  const paths = Object.keys((await document.json()).paths);
  expect(paths).toContain('/api/v1/requests');

  await page.goto('/api-docs');
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Slipway API');
  await expect(page.getByRole('heading', { name: /POST \/api\/v1\/requests$/ })).toBeVisible();
  await expect(page.getByRole('link', { name: '/api/v1/openapi.json' })).toBeVisible();
  // A problem's type leads to its explanation on this page.
  await expect(page.locator('#problem-conflict')).toContainText('conflict');
  await page.screenshot({ path: 'test-results/api-docs.png', fullPage: false });
});
