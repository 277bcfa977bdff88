// The thin slice, end to end in real Chromium: a namespace auto-approves in dev; a
// database request goes through a live pre-check, one round of changes, a reviewed
// diff, approval, execution, the CMDB and the audit log.
import { test, expect, type Page } from '@playwright/test';
import { awaitOutcome, loginAs } from './helpers';

test.describe.configure({ mode: 'serial' });

async function hydrated(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

async function openForm(page: Page, typeTitle: string): Promise<void> {
  await page.goto('/catalog');
  await page.getByRole('link', { name: `Request a ${typeTitle}` }).click();
  await expect(page.getByRole('heading', { name: `Request a ${typeTitle}` })).toBeVisible();
  await hydrated(page);
}

function requestIdFrom(page: Page): string {
  const match = /\/requests\/(\d+)/.exec(page.url());
  if (!match) throw new Error(`not on a request page: ${page.url()}`);
  return match[1];
}

const state = (page: Page) => page.getByTestId('request-state').first();

test('a namespace in dev is approved by policy and completes', async ({ page }) => {
  await loginAs(page, 'alice');
  await openForm(page, 'Kubernetes namespace');
  await page.getByRole('textbox', { name: 'Name', exact: true }).fill('shop');
  await page.getByLabel('Team').selectOption('payments');
  await page.getByLabel('Environment').selectOption('dev');
  const precheck = page.getByRole('region', { name: 'Pre-check' });
  await expect(precheck.getByTestId('precheck-verdict')).toHaveText('passed');
  await expect(precheck.getByTestId('resource-name')).toHaveText('payments-shop-dev');
  await page.getByRole('button', { name: 'Submit request' }).click();
  await expect(page).toHaveURL(/\/requests\/\d+$/);
  await awaitOutcome(page, 'Completed');
  await expect(page.getByRole('region', { name: 'Decisions' })).toContainText('policy');
  await expect(page.getByRole('link', { name: /asset #\d+/ })).toBeVisible();
  await expect(page.getByTestId('job-runs')).toContainText('Execution job done: 1 run;');
});

test('a database request: live pre-check, changes requested, diff, approval, asset, audit', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const carol = await (await browser.newContext()).newPage();

  // Request, with a live error fixed before submitting.
  await loginAs(alice, 'alice');
  await openForm(alice, 'PostgreSQL database');
  const name = alice.getByRole('textbox', { name: 'Name', exact: true });
  await name.fill('Orders');
  await name.blur();
  await expect(alice.locator('#field-name-error')).toContainText('pattern');
  await expect(name).toHaveAttribute('aria-invalid', 'true');
  await name.fill('orders');
  await expect(alice.locator('#field-name-error')).toBeEmpty();
  await alice.getByLabel('Team').selectOption('payments');
  await alice.getByLabel('Environment').selectOption('dev');
  const precheck = alice.getByRole('region', { name: 'Pre-check' });
  await expect(precheck).toContainText('payments-orders-dev');
  // The oldest payments namespace in dev: shop above, or one an earlier spec made.
  await expect(precheck).toContainText(/found payments-[a-z0-9-]+-dev/);
  await expect(precheck.getByTestId('precheck-verdict')).toHaveText('passed');
  await alice.getByRole('button', { name: 'Submit request' }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const id = requestIdFrom(alice);
  await expect(state(alice)).toHaveText('In review');

  // The reviewer sends it back once.
  await loginAs(bob, 'bob');
  await bob.goto('/reviews');
  await bob.getByRole('link', { name: `#${id}` }).click();
  await hydrated(bob);
  await expect(bob.getByRole('region', { name: 'Rendered files' })).toContainText('cluster.yaml');
  await bob.getByLabel('Comment').fill('Please give it 50 GB of storage.');
  await bob.getByRole('button', { name: 'Request changes' }).click();
  await expect(state(bob)).toHaveText('Changes requested');

  // The requester revises it; her page says by when, before it is closed.
  await alice.goto(`/requests/${id}`);
  await expect(alice.getByTestId('closes-unrevised')).toContainText(/Unless it is revised by \d{4}-\d{2}-\d{2}/);
  await alice.getByRole('link', { name: 'Edit and resubmit' }).click();
  await hydrated(alice);
  await expect(alice.getByText('Please give it 50 GB of storage.', { exact: true })).toBeVisible();
  // Guidance from history quotes the comment beside the field it named.
  await expect(alice.getByText(/Sent back before: 1 request/)).toBeVisible();
  await alice.getByRole('spinbutton', { name: 'Storage (GB)' }).fill('50');
  await expect(alice.getByRole('region', { name: 'Pre-check' }).getByTestId('precheck-verdict')).toHaveText('passed');
  await alice.getByRole('button', { name: 'Resubmit' }).click();
  await expect(alice).toHaveURL(new RegExp(`/requests/${id}$`));
  await expect(state(alice)).toHaveText('In review');

  // The reviewer sees only what changed since revision 1, and approves.
  await bob.goto(`/requests/${id}`);
  await hydrated(bob);
  const diff = bob.getByRole('region', { name: 'Changes since revision 1' });
  await expect(diff).toBeVisible();
  await expect(diff.getByRole('row', { name: /Storage \(GB\)/ })).toContainText('20');
  await expect(diff.getByRole('row', { name: /Storage \(GB\)/ })).toContainText('50');
  await expect(diff.locator('pre.diff .add')).toContainText(['50']);
  await bob.getByRole('button', { name: 'Approve' }).click();
  await awaitOutcome(bob, 'Completed');

  // The asset is recorded.
  await bob.getByRole('link', { name: /asset #\d+/ }).click();
  await expect(bob.getByRole('heading', { level: 1 })).toContainText('payments-orders-dev');
  await expect(bob.getByRole('region', { name: 'Monitoring' })).toContainText('prometheus-rule');

  // The audit log shows each step.
  await loginAs(carol, 'carol');
  await carol.goto(`/audit?target=request:${id}`);
  const log = carol.locator('table.audit');
  for (const action of ['request.submit', 'request.enter_review', 'request.request_changes', 'request.resubmit', 'request.approve', 'request.start_execution', 'request.execution_succeeded', 'request.verification_passed']) {
    await expect(log).toContainText(action);
  }
});

test('pages refuse the wrong role', async ({ page }) => {
  await loginAs(page, 'alice');
  await page.goto('/audit');
  await expect(page.getByRole('alert')).toContainText('needs one of the roles');
  await page.goto('/reviews');
  await expect(page.getByRole('alert')).toContainText('reviewer');
});

test('signed-out visitors are sent to the sign-in page', async ({ page }) => {
  await page.goto('/requests');
  await expect(page).toHaveURL(/\/login\?next=/);
});
