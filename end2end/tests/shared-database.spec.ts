// A database made for real on the shared PostgreSQL server, in real Chromium:
// alice asks for one in dev (approved by policy), watches psql and the sign-in
// check run on the request page, and is shown the generated owner password once.
// Runs when scripts/test found PostgreSQL (SLIPWAY_E2E_POSTGRES names it).
import { execFileSync, spawn } from 'node:child_process';
import { test, expect } from '@playwright/test';
import { awaitOutcome, loginAs } from './helpers';

const server = process.env.SLIPWAY_E2E_POSTGRES;
const name = `e2e${Date.now() % 100_000_000}`;
const resource = `payments_${name}_dev`;
const slowName = `slow${Date.now() % 100_000_000}`;
const slowResource = `payments_${slowName}_dev`;

if (!server && process.env.CI === 'true') {
  throw new Error('CI=true but SLIPWAY_E2E_POSTGRES is not set: the shared database must be tested');
}
test.skip(!server, 'SLIPWAY_E2E_POSTGRES is not set: no PostgreSQL server to create on');

test.afterAll(() => {
  if (!server) return;
  for (const sql of [resource, slowResource].flatMap((r) => [`DROP DATABASE IF EXISTS ${r} WITH (FORCE)`, `DROP ROLE IF EXISTS ${r}`])) {
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

test('the end of a followed run is said, and the page is not reloaded', async ({ page }) => {
  // Another session holds an uncommitted role of the database's name: psql's
  // CREATE ROLE waits for it, so the run stays in motion until the test lets it
  // go, whatever the machine's pace.
  const holding = 'SELECT pg_sleep(120)';
  const holder = spawn('psql', ['--no-psqlrc', '-q', '-d', server!, '-c',
    `BEGIN; CREATE ROLE ${slowResource}; ${holding}; ROLLBACK;`]);
  const psql = (sql: string) =>
    execFileSync('psql', ['--no-psqlrc', '-tAq', '-d', server!, '-c', sql]).toString().trim();
  const others = `FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%CREATE ROLE ${slowResource};%' AND pid <> pg_backend_pid()`;
  try {
    await expect.poll(() => psql(`SELECT count(*) ${others}`)).toBe('1');
    await loginAs(page, 'alice');
    await page.goto('/requests/new/shared-database');
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
    await page.getByRole('textbox', { name: 'Name', exact: true }).fill(slowName);
    await page.getByLabel('Team').selectOption('payments');
    await page.getByLabel('Environment').selectOption('dev');
    await expect(page.getByRole('region', { name: 'Pre-check' }).getByTestId('precheck-verdict')).toHaveText('passed');
    await page.getByRole('button', { name: 'Submit request' }).click();
    await expect(page).toHaveURL(/\/requests\/\d+$/);
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
    const following = page.locator('section.live-steps');
    await expect(following).toHaveCount(1);
    // A mark a reload would wipe out.
    await page.evaluate(() => { (window as unknown as { stayed: boolean }).stayed = true; });
    await expect(following.getByRole('status')).not.toHaveText(/The run has ended/);
    // Let the run go on: the holding transaction is cancelled and rolls back.
    expect(psql(`SELECT count(*) FROM (SELECT pg_cancel_backend(pid) ${others}) AS cancelled`)).toBe('1');
    await expect(page.getByRole('link', { name: 'Show the result' })).toBeVisible({ timeout: 30_000 });
    await expect(following.getByRole('status')).toHaveText(/The run has ended/);
    expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
    await page.getByRole('link', { name: 'Show the result' }).click();
    await expect(page.getByRole('region', { name: 'Acceptance checks' }))
      .toContainText(`${slowResource} signs in to its database with the generated password — passed`);
  } finally {
    // A test that stopped early leaves no session holding the role.
    try {
      psql(`SELECT count(pg_cancel_backend(pid)) ${others}`);
    } finally {
      holder.kill();
    }
  }
});
