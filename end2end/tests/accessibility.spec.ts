// Every page a person works with passes axe-core's WCAG 2.1 A and AA rules
// (contrast, labels, landmarks, names of buttons and links), as each demo user
// sees it with data on it. axe-core comes from npm and is injected from disk.
import { test, expect, type Page } from '@playwright/test';
import path from 'node:path';
import { awaitOutcome, fillNamespaceForm, loginAs, type DemoUser } from './helpers';

const AXE_SOURCE = path.join(__dirname, '..', 'node_modules', 'axe-core', 'axe.min.js');

type Violation = { id: string; impact: string | null; help: string; nodes: { target: string[] }[] };

async function violations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE_SOURCE });
  const found: Violation[] = await page.evaluate(async () => {
    // @ts-expect-error axe is the global the injected script defines
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations;
  });
  return found.map(
    (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
}

const PAGES: Record<DemoUser, string[]> = {
  alice: [
    '/catalog',
    '/requests/new/k8s-namespace',
    '/requests/new/postgres-database',
    '/requests',
    '/assets',
    '/account/tokens',
    '/account/sessions',
  ],
  bob: ['/reviews'],
  carol: ['/audit', '/attention', '/metrics/flow', '/api-docs'],
};

test('the sign-in page passes the WCAG 2.1 AA checks', async ({ page }) => {
  await page.goto('/login');
  expect(await violations(page)).toEqual([]);
});

test('the signed-in pages pass the WCAG 2.1 AA checks', async ({ browser }) => {
  test.setTimeout(180_000);
  // Data to show: a completed namespace, with its request and asset pages.
  const owner = await browser.newPage();
  await loginAs(owner, 'alice');
  await fillNamespaceForm(owner, `a11y-${Date.now() % 100000}`, 'dev');
  await owner.getByRole('button', { name: 'Submit request' }).click();
  await expect(owner).toHaveURL(/\/requests\/\d+$/);
  await awaitOutcome(owner, 'Completed', 30_000);
  const requestPath = new URL(owner.url()).pathname;
  const assetLink = owner.getByRole('link', { name: /^asset #\d+$/ });
  const assetPath = (await assetLink.getAttribute('href')) ?? '/assets';
  await owner.close();

  const pages: Record<DemoUser, string[]> = {
    ...PAGES,
    alice: [...PAGES.alice, requestPath, assetPath, `${assetPath}/actions/resize`],
    carol: [...PAGES.carol, requestPath],
  };
  const problems: string[] = [];
  for (const who of Object.keys(pages) as DemoUser[]) {
    const page = await browser.newPage();
    await loginAs(page, who);
    for (const path of pages[who]) {
      await page.goto(path);
      await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
      for (const line of await violations(page)) {
        problems.push(`${who} ${path}: ${line}`);
      }
    }
    await page.close();
  }
  expect(problems).toEqual([]);
});

test('a refused submit takes the focus to the first field to fix and says which', async ({ page }) => {
  await loginAs(page, 'alice');
  await page.goto('/requests/new/k8s-namespace');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByLabel('Team').selectOption('payments');
  const submit = page.getByRole('button', { name: 'Submit request' });
  await submit.focus();
  await page.keyboard.press('Enter');
  // The name is missing: the focus lands on its box, not on the page's top.
  await expect(page.getByRole('textbox', { name: 'Name', exact: true })).toBeFocused();
  await expect(page.getByRole('status').filter({ hasText: /fields? needs? fixing: .*Name/ })).toBeVisible();
  await expect(page).toHaveURL(/\/requests\/new\/k8s-namespace$/);
  // The button still works (pressed, it checks again), so it does not read as unavailable.
  await expect(submit).toHaveAttribute('aria-disabled', 'false');
});

test('leaving a field with an error says it in the status line', async ({ page }) => {
  await loginAs(page, 'alice');
  await page.goto('/requests/new/k8s-namespace');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  const name = page.getByRole('textbox', { name: 'Name', exact: true });
  await name.fill('Not Valid');
  // Nothing is said while typing; leaving the field says its label and its error.
  await expect(page.locator('.request-form .hint[role="status"]')).toHaveText('');
  await name.blur();
  await expect(page.locator('.request-form .hint[role="status"]')).toHaveText(/^Name: .+/);
  await expect(page.locator('#field-name-error')).not.toBeEmpty();
});

test('the pre-check says its verdict once, in a status line of its own', async ({ page }) => {
  await loginAs(page, 'alice');
  await fillNamespaceForm(page, `verdict-${Date.now() % 100000}`, 'dev');
  const precheck = page.getByRole('region', { name: 'Pre-check' });
  await expect(precheck).not.toHaveAttribute('aria-live');
  await expect(page.getByTestId('precheck-status')).toHaveText('Pre-check passed');
});
