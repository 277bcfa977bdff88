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
