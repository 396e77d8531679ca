// Browser check of the Swagger UI page at /docs, as a person would use it, with no internet.
//
// Usage: node docs.mjs http://127.0.0.1:PORT   (CHROMIUM=/path/to/chromium to override)
//
// Drives Debian's Chromium (headless) through playwright-core. Every request to a host other
// than the server's own loopback address is blocked and makes the check fail, so a page that
// needs a CDN (as FastAPI's does) cannot pass. Waits for the operations to render, checks that
// `POST /events` and the `Event` schema are shown, then expands `POST /events`, uses
// "Try it out" / "Execute" with the example body and expects a 200 with the created event in
// the page. Saves a screenshot in ./screenshots/ (git-ignored). Exit code 0 only if all held.

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const base = process.argv[2];
if (!base) {
  console.error('usage: node docs.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
const origin = new URL(base).origin;
const loopback = new Set(['127.0.0.1', 'localhost', '[::1]']);
const here = dirname(fileURLToPath(import.meta.url));
const screenshots = join(here, 'screenshots');
const timeout = 20_000;

const blocked = [];
const pageErrors = [];
// Requests sent and not yet answered: printed when the check fails, to tell a hung server
// from a broken page.
const pending = new Set();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking'],
});
let failure = null;
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (loopback.has(url.hostname)) {
      return route.continue();
    }
    blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  page.on('request', (request) => pending.add(request.url()));
  page.on('requestfinished', (request) => pending.delete(request.url()));
  page.on('requestfailed', (request) => {
    pending.delete(request.url());
    console.error(`request failed: ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') console.error(`page console: ${message.text()}`);
  });

  const response = await page.goto(`${origin}/docs`, { waitUntil: 'load', timeout });
  check(response && response.status() === 200, `GET /docs answered ${response?.status()}`);

  const post = page.locator('.opblock.opblock-post').filter({
    has: page.locator('.opblock-summary-path[data-path="/events"]'),
  });
  await post.waitFor({ state: 'visible', timeout });
  const operations = await page.locator('.opblock').count();
  console.log(`operations rendered: ${operations}`);
  check(operations >= 8, `expected at least 8 operations, saw ${operations}`);

  // Swagger UI 5 renders OpenAPI 3.1 schemas with its JSON Schema 2020-12 components.
  const eventSchema = page
    .locator('section.models .json-schema-2020-12__title', { hasText: /^Event$/ })
    .first();
  await eventSchema.waitFor({ state: 'visible', timeout });
  console.log('the Event schema is shown');

  await post.locator('.opblock-summary').first().click();
  await post.locator('button.try-out__btn').click();
  const body = post.locator('textarea.body-param__text');
  await body.waitFor({ state: 'visible', timeout });
  const example = JSON.parse(await body.inputValue());
  check(
    typeof example.user_id === 'string' && typeof example.description === 'string',
    `the request body is not prefilled with the example: ${JSON.stringify(example)}`,
  );
  const created = page.waitForResponse(
    (r) => r.url() === `${origin}/events` && r.request().method() === 'POST',
    { timeout },
  );
  await post.locator('button.execute').click();
  const answer = await created;
  check(answer.status() === 200, `POST /events from the page answered ${answer.status()}`);
  const status = post.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ state: 'visible', timeout });
  const shown = (await status.innerText()).trim();
  check(shown === '200', `the page shows status ${JSON.stringify(shown)}, not 200`);
  const { event_id: id } = await answer.json();
  await post.locator('.live-responses-table', { hasText: id }).waitFor({ timeout });
  console.log(`Try it out: POST /events -> ${shown}, event ${id} shown in the page`);
} catch (error) {
  failure = error;
} finally {
  if (page) {
    mkdirSync(screenshots, { recursive: true });
    const file = join(screenshots, 'docs.png');
    await page.screenshot({ path: file, fullPage: true }).catch((e) => console.error(`no screenshot: ${e}`));
    console.log(`screenshot: ${file}`);
  }
  await browser.close();
}

if (blocked.length) {
  console.error(`the page tried to reach other hosts (blocked):\n  ${blocked.join('\n  ')}`);
}
if (pageErrors.length) {
  console.error(`JavaScript errors in the page:\n  ${pageErrors.join('\n  ')}`);
}
if (failure || blocked.length || pageErrors.length) {
  if (pending.size) console.error(`requests still unanswered:\n  ${[...pending].join('\n  ')}`);
  if (failure) console.error(`browser check FAILED: ${failure.message}`);
  process.exit(1);
}
console.log('browser check passed: /docs works offline, Try it out created an event');

function check(condition, message) {
  if (!condition) throw new Error(message);
}
