// A database made for real on the shared PostgreSQL server, in real Chromium:
// alice asks for one in dev (approved by policy), watches psql and the sign-in
// check run on the request page, and is shown the generated owner password once.
// Runs when scripts/test found PostgreSQL (SLIPWAY_E2E_POSTGRES names it).
import { execFileSync } from 'node:child_process';
import { test, expect } from '@playwright/test';
import { awaitOutcome, loginAs } from './helpers';

const server = process.env.SLIPWAY_E2E_POSTGRES;
const name = `e2e${Date.now() % 100_000_000}`;
const resource = `payments_${name}_dev`;

if (!server && process.env.CI === 'true') {
  throw new Error('CI=true but SLIPWAY_E2E_POSTGRES is not set: the shared database must be tested');
}
test.skip(!server, 'SLIPWAY_E2E_POSTGRES is not set: no PostgreSQL server to create on');

test.afterAll(() => {
  if (!server) return;
  for (const sql of [`DROP DATABASE IF EXISTS ${resource} WITH (FORCE)`, `DROP ROLE IF EXISTS ${resource}`]) {
    execFileSync('psql', ['--no-psqlrc', '-q', '-d', server, '-c', sql]);
  }
});

test('alice gets a real database and sees its owner password exactly once', async ({ page }) => {
  await loginAs(page, 'alice');
  await page.goto('/catalog');
  await page.getByRole('link', { name: 'Request a Database on the shared PostgreSQL server' }).click();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByRole('textbox', { name: 'Name', exact: true }).fill(name);
  await page.getByLabel('Team').selectOption('payments');
  await page.getByLabel('Environment').selectOption('dev');
  const precheck = page.getByRole('region', { name: 'Pre-check' });
  await expect(precheck.getByTestId('precheck-verdict')).toHaveText('passed');
  await expect(precheck.getByTestId('resource-name')).toHaveText(resource);
  await page.getByRole('button', { name: 'Submit request' }).click();
  await expect(page).toHaveURL(/\/requests\/\d+$/);

  // The page follows the job by itself: psql, then the check that signs in.
  await awaitOutcome(page, 'Completed', 30_000);
  const checks = page.getByRole('region', { name: 'Acceptance checks' });
  await expect(checks).toContainText(`${resource} signs in to its database with the generated password — passed`);
  const secrets = page.getByRole('region', { name: 'Generated secrets' });
  await expect(secrets).toContainText('Owner password');
  await page.screenshot({ path: 'test-results/shared-database-request.png', fullPage: true });

  await secrets.getByRole('button', { name: 'Show the owner password once' }).click();
  await expect(page.getByRole('heading', { name: /Owner password of request #\d+/ })).toBeVisible();
  const value = page.getByLabel('Owner password');
  await expect(value).toHaveValue(/^[A-Za-z0-9]{32}$/);
  await page.screenshot({ path: 'test-results/shared-database-reveal.png', fullPage: true });

  await page.getByRole('link', { name: /Back to request #\d+/ }).click();
  await expect(secrets).toContainText('it was shown to alice on');
  await expect(secrets.getByRole('button')).toHaveCount(0);
});
