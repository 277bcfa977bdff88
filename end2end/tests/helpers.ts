// Shared helpers for Slipway's end-to-end specs.
import { expect, type Page } from '@playwright/test';

/** Demo users seeded by `slipway serve --demo`. */
export const USERS = {
  /** requester, team payments */
  alice: { user: 'alice', password: 'alice-demo-pw' },
  /** reviewer */
  bob: { user: 'bob', password: 'bob-demo-pw' },
  /** platform admin */
  carol: { user: 'carol', password: 'carol-demo-pw' },
} as const;

export type DemoUser = keyof typeof USERS;

/**
 * Signs in through the /login form and waits until the app lands on /catalog.
 * Works with or without hydration (the form also posts without WASM).
 */
export async function login(page: Page, user: string, password: string): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/catalog(?:[/?#]|$)/);
}

/** Signs in as one of the demo users (see USERS). */
export async function loginAs(page: Page, who: DemoUser): Promise<void> {
  const { user, password } = USERS[who];
  await login(page, user, password);
}

/**
 * Opens the namespace form for team payments, fills it and waits until the server's
 * pre-check passes; the submit is left to the caller.
 */
export async function fillNamespaceForm(page: Page, name: string, environment: string): Promise<void> {
  await page.goto('/requests/new/k8s-namespace');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByRole('textbox', { name: 'Name', exact: true }).fill(name);
  await page.getByLabel('Team').selectOption('payments');
  await page.getByLabel('Environment').selectOption(environment);
  await expect(page.getByRole('region', { name: 'Pre-check' }).getByTestId('precheck-verdict')).toHaveText('passed');
}

/**
 * Waits until the request page shows the request in `expected` state. A page that
 * follows a run live never reloads by itself (a reload would throw a screen reader
 * back to the top): when the run ends it says so and offers "Show the result",
 * which this follows, as a person would.
 */
export async function awaitOutcome(page: Page, expected: string, timeout = 20_000): Promise<void> {
  const state = page.getByTestId('request-state').first();
  const result = page.getByRole('link', { name: 'Show the result' });
  await expect(state.filter({ hasText: expected }).or(result).first()).toBeVisible({ timeout });
  if (await result.isVisible()) {
    await result.click();
  }
  await expect(state).toHaveText(expected, { timeout });
}
