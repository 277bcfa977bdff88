// Playwright configuration for Slipway's end-to-end tests.
//
// Run through ../scripts/test (which builds the release binary and site first),
// or by hand after `cargo leptos build --release --split`:
//   cd end2end && npx playwright test            # all specs
//   npx playwright test --list                   # list specs without running
// The browser is the system Chromium (CHROMIUM_PATH, default /usr/bin/chromium);
// Playwright never downloads browsers here. The web server is started by
// ./start-server.sh on port 3100 with a fresh temporary data directory per run.
import { defineConfig, devices } from '@playwright/test';

const PORT = Number(process.env.SLIPWAY_E2E_PORT || 3100);
const BASE_URL = `http://127.0.0.1:${PORT}`;

export default defineConfig({
  testDir: 'tests',
  fullyParallel: false,
  workers: 1,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  outputDir: 'test-results',
  use: {
    baseURL: BASE_URL,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
      ],
    },
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        // devices[] sets channel/defaults; keep our system Chromium.
        channel: undefined,
      },
    },
  ],
  webServer: {
    command: 'bash ./start-server.sh',
    url: `${BASE_URL}/healthz`,
    timeout: 120_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: { SLIPWAY_E2E_PORT: String(PORT) },
    // SIGTERM lets start-server.sh stop the server and delete its temp data dir.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
  },
});
