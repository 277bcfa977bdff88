// The portal's shape in the browser: pages are finished HTML from the server, only
// the request form and the live refresh run as wasm islands, the parameter checks
// arrive as a separate chunk only where they are used, and every action still works
// with script turned off.
import { test, expect, type Page } from '@playwright/test';
import { fillNamespaceForm, loginAs } from './helpers';

test.describe.configure({ mode: 'serial' });

function wasmFetches(page: Page): string[] {
  const seen: string[] = [];
  page.on('request', (req) => {
    const path = new URL(req.url()).pathname;
    if (path.endsWith('.wasm')) seen.push(path);
  });
  return seen;
}

test('most pages load only the first bundle; the form loads the checks chunk on demand', async ({ page }) => {
  const fetched = wasmFetches(page);
  await loginAs(page, 'alice');
  await page.goto('/catalog');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  // At least the first bundle, and nothing else (an empty list would pass `every`).
  expect(fetched.length, 'the first bundle was fetched').toBeGreaterThan(0);
  expect(fetched.every((p) => p === '/pkg/slipway.wasm'), `fetched ${fetched.join(', ')}`).toBe(true);

  await page.getByRole('link', { name: 'Request a PostgreSQL database' }).click();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  const name = page.getByRole('textbox', { name: 'Name', exact: true });
  await name.fill('Bad Name');
  await name.blur();
  await expect(page.locator('#field-name-error')).toContainText('pattern');
  expect(fetched.some((p) => p !== '/pkg/slipway.wasm'), `fetched ${fetched.join(', ')}`).toBe(true);
});

test('signing in, reviewing and signing out work with script turned off', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  await loginAs(alice, 'alice');
  await fillNamespaceForm(alice, 'noscript', 'staging');
  await alice.getByRole('button', { name: 'Submit request' }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const id = /\/requests\/(\d+)/.exec(alice.url())?.[1];

  const bob = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await loginAs(bob, 'bob');
  await bob.goto(`/requests/${id}`);
  const state = bob.getByTestId('request-state').first();
  await expect(state).toHaveText('In review');
  // A request for changes needs a comment: the refusal shows next to the field.
  await bob.getByRole('button', { name: 'Request changes' }).click();
  await expect(bob).toHaveURL(new RegExp(`/requests/${id}`));
  await expect(bob.locator('.review-box .field-error')).toContainText('is required');
  await expect(state).toHaveText('In review');
  // A refused comment comes back in its box, not lost in the redirect.
  // (The box's maxlength stops a person at 4,000 characters; a client without
  // it gets the server's refusal.)
  const long = 'Please explain. '.repeat(251);
  await bob.getByLabel('Comment').evaluate((box) => box.removeAttribute('maxlength'));
  await bob.getByLabel('Comment').fill(long);
  await bob.getByRole('button', { name: 'Request changes' }).click();
  await expect(bob.locator('.review-box .field-error')).toContainText('4015 characters long');
  await expect(bob.getByLabel('Comment')).toHaveValue(long);
  await bob.getByLabel('Comment').fill('Staging needs a reason in the description.');
  await bob.getByRole('button', { name: 'Request changes' }).click();
  await expect(state).toHaveText('Changes requested');
  await expect(bob.getByRole('region', { name: 'Decisions' })).toContainText('Staging needs a reason');

  await bob.getByRole('button', { name: 'Sign out' }).click();
  await expect(bob).toHaveURL(/\/login/);
});

test('when the checks chunk cannot load, the form says so and the server still checks', async ({ page }) => {
  await loginAs(page, 'alice');
  await page.route(/\/pkg\/split_[^/]*\.wasm$/, (route) => route.abort());
  await page.goto('/requests/new/k8s-namespace');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByRole('textbox', { name: 'Name', exact: true }).fill('Not Valid');
  await page.getByLabel('Team').selectOption('payments');
  await page.getByLabel('Environment').selectOption('dev');
  await expect(page.getByRole('status').filter({ hasText: 'could not be loaded' })).toBeVisible();
  await page.getByRole('button', { name: 'Submit request' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'The server refused the request' })).toBeVisible();
  await expect(page).toHaveURL(/\/requests\/new\/k8s-namespace$/);
});

test('a double-clicked submit creates one request', async ({ page }) => {
  await loginAs(page, 'alice');
  await fillNamespaceForm(page, 'twice', 'staging');
  await page.getByRole('button', { name: 'Submit request' }).dblclick();
  await expect(page).toHaveURL(/\/requests\/\d+$/);
  await page.goto('/requests');
  await expect(page.getByRole('row').filter({ hasText: 'payments-twice-staging' })).toHaveCount(1);
});

test('with script turned off, a requester submits the request form and lands on the request', async ({ browser }) => {
  const alice = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await loginAs(alice, 'alice');
  await alice.goto('/requests/new/k8s-namespace');
  const name = alice.getByRole('textbox', { name: 'Name', exact: true });
  // Usable at once: nothing waits for a script that never runs.
  await expect(name).toBeEnabled();
  await expect(alice.getByRole('spinbutton', { name: 'CPU limit (cores)' })).toHaveValue('4');
  // Refused by the server: back on the form, the values kept, the field marked.
  await name.fill('Not Valid');
  await alice.getByLabel('Team').selectOption('payments');
  await alice.getByLabel('Environment').selectOption('staging');
  await alice.getByRole('button', { name: 'Submit request' }).click();
  await expect(alice).toHaveURL(/\/requests\/new\/k8s-namespace\?/);
  await expect(name).toHaveValue('Not Valid');
  await expect(name).toHaveAttribute('aria-invalid', 'true');
  await expect(alice.locator('#field-name-error')).not.toBeEmpty();
  await expect(alice.getByRole('status').filter({ hasText: 'fixing: Name' })).toBeVisible();
  // Fixed and sent again: the request's page.
  await name.fill('noscript-form');
  await alice.getByRole('button', { name: 'Submit request' }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  await expect(alice.getByText('payments-noscript-form-staging').first()).toBeVisible();
});
