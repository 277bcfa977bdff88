// A day-2 action in real Chromium: alice scales her database from its asset
// page, bob reviews the change with its diff against what is deployed and
// approves it, and the asset records the new size.
import { test, expect, type Page } from '@playwright/test';
import { awaitOutcome, fillNamespaceForm, loginAs } from './helpers';

test.describe.configure({ mode: 'serial' });

async function hydrated(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

function requestIdFrom(page: Page): string {
  const match = /\/requests\/(\d+)/.exec(page.url());
  if (!match) throw new Error(`not on a request page: ${page.url()}`);
  return match[1];
}

const state = (page: Page) => page.getByTestId('request-state').first();

test('alice scales her database and bob reviews the change with its diff', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await loginAs(alice, 'alice');
  await loginAs(bob, 'bob');

  // The namespace (approved by policy in dev) and the database it holds.
  await fillNamespaceForm(alice, 'books', 'dev');
  await alice.getByRole('button', { name: 'Submit request' }).click();
  await awaitOutcome(alice, 'Completed');
  await alice.goto('/requests/new/postgres-database');
  await hydrated(alice);
  await alice.getByRole('textbox', { name: 'Name', exact: true }).fill('books');
  await alice.getByLabel('Team').selectOption('payments');
  await alice.getByLabel('Environment').selectOption('dev');
  await expect(alice.getByRole('region', { name: 'Pre-check' }).getByTestId('precheck-verdict')).toHaveText('passed');
  await alice.getByRole('button', { name: 'Submit request' }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const created = requestIdFrom(alice);
  await bob.goto(`/requests/${created}`);
  await hydrated(bob);
  await bob.getByRole('button', { name: 'Approve' }).click();
  await awaitOutcome(bob, 'Completed');

  // From the asset page, the action's form, filled from the asset.
  await alice.goto(`/requests/${created}`);
  await alice.getByRole('link', { name: /asset #\d+/ }).click();
  await expect(alice.getByRole('heading', { level: 1 })).toContainText('payments-books-dev');
  await expect(alice.getByTestId('asset-templates')).toContainText('the current one');
  const actions = alice.getByRole('region', { name: 'Actions' });
  await expect(actions.getByRole('link')).toHaveText(['Resize', 'Upgrade PostgreSQL', 'Back up now', 'Restore from a backup', 'Decommission']);
  await actions.getByRole('link', { name: 'Resize' }).click();
  await expect(alice.getByRole('heading', { level: 1 })).toHaveText('Resize: payments-books-dev');
  await hydrated(alice);
  await expect(alice.getByLabel('Size')).toHaveValue('small');
  await expect(alice.getByRole('spinbutton', { name: 'Storage (GB)' })).toHaveValue('20');
  await alice.getByLabel('Size').selectOption('medium');
  // The action's rule reads the asset as it is: a volume cannot shrink.
  await alice.getByRole('spinbutton', { name: 'Storage (GB)' }).fill('10');
  await expect(alice.getByRole('region', { name: 'Pre-check' })).toContainText('storage_gb cannot be less than the 20 GB the cluster has');
  await alice.getByRole('spinbutton', { name: 'Storage (GB)' }).fill('40');
  await expect(alice.getByRole('region', { name: 'Pre-check' }).getByTestId('precheck-verdict')).toHaveText('passed');
  await alice.getByRole('button', { name: 'Ask for: Resize' }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const scale = requestIdFrom(alice);
  await expect(state(alice)).toHaveText('In review');
  await expect(alice.getByTestId('acts-on')).toContainText('payments-books-dev');

  // The reviewer sees the change against what is deployed, and approves.
  await bob.goto(`/requests/${scale}`);
  await hydrated(bob);
  const diff = bob.getByRole('region', { name: 'Changes against what is deployed' });
  await expect(diff).toBeVisible();
  await expect(diff.getByRole('row', { name: /^Size/ })).toContainText('small');
  await expect(diff.getByRole('row', { name: /^Size/ })).toContainText('medium');
  await expect(diff.getByRole('row', { name: /Storage \(GB\)/ })).toContainText('40');
  await expect(diff).toContainText('cluster.yaml');
  await expect(diff.locator('pre.diff .add')).toContainText(['40Gi']);
  await bob.getByRole('button', { name: 'Approve' }).click();
  await awaitOutcome(bob, 'Completed');

  // The asset records the new size, and its history says so.
  await alice.goto(`/requests/${scale}`);
  await alice.getByTestId('acts-on').getByRole('link').click();
  await expect(alice.getByRole('region', { name: 'Parameters' })).toContainText('medium');
  await expect(alice.getByRole('region', { name: 'History' })).toContainText('asset.updated');
});

test('a link from chat opens the form filled with what was sent, never a secret', async ({ page }) => {
  await loginAs(page, 'alice');
  await page.goto('/requests/new/postgres-database?name=ledger&team=payments&storage_gb=40&owner_password=leaked-in-a-link&surprise=1');
  await hydrated(page);
  await expect(page.getByRole('textbox', { name: 'Name', exact: true })).toHaveValue('ledger');
  await expect(page.getByLabel('Team')).toHaveValue('payments');
  await expect(page.getByRole('spinbutton', { name: 'Storage (GB)' })).toHaveValue('40');
  await expect(page.getByLabel('Owner password')).toHaveValue('');
  // The person submitting is told which fields the link filled in (not the secret).
  const notice = page.getByTestId('filled-from-link');
  await expect(notice).toContainText('Name, Team, Storage (GB)');
  await expect(notice).not.toContainText('password');
});

test('carol opens the flow metrics: charts with a table beside them', async ({ page }) => {
  await loginAs(page, 'carol');
  await page.goto('/metrics/flow');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Flow metrics');
  // Creations by default: a backup's seconds do not shorten a database's lead time.
  const summary = page.getByRole('region', { name: 'All types, creations', exact: true });
  await expect(summary).toContainText('Sent back for changes');
  await expect(summary).toContainText('Auto-approved');
  // Charts are SVG drawn on the server, each an image with a title and description.
  const charts = page.locator('figure.chart svg[role="img"]');
  await expect(charts.first()).toBeVisible();
  expect(await charts.count()).toBeGreaterThan(0);
  // The trend's charts say in words what they show: the wait and touch line adds
  // up every request's hours, far above the median lead time beside it.
  await expect(page.locator('figure.chart figcaption')).toContainText([
    'Median lead time, by week',
    'Wait and touch, by week: the hours of all requests added up',
    'Sent back, auto-approved, failed and handled by hand, by week',
  ]);
  // Beside each chart, a table for screen readers and whoever prefers numbers.
  await page.getByText('Table: time per step').first().click();
  await expect(page.locator('details[open] table').first()).toBeVisible();
  await expect(page.getByRole('region', { name: 'By type', exact: true })).toContainText('postgres-database');
});
