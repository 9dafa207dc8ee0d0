// Drives the operator console in a real Chromium (Debian's, through playwright-core) and
// checks it with axe-core. Run by gateway/tests/api/console_browser.rs, which seeds the
// data through the real HTTP API and passes what the pages must show:
//   node console.mjs '{"base": "...", "adminKey": "...", "expect": {...}, "screenshots": "dir"}'
// Exits 0 with a summary line, or 1 with what failed.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const args = JSON.parse(process.argv[2]);
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  // A Content-Security-Policy violation or a script error shows up here.
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));

  // Serious and critical accessibility violations on the page as it is now.
  const audit = async (name) => {
    await page.evaluate(axeSource);
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    check(bad.length === 0, `${name}: accessibility violations ${bad.map((v) => `${v.id} (${v.nodes.length})`).join(', ')}`);
    return result.violations.length;
  };

  // No session: the overview sends the browser to the sign-in form.
  await page.goto(`${args.base}/console/overview`);
  check(new URL(page.url()).pathname === '/console/signin', `unsigned overview went to ${page.url()}`);
  await audit('sign-in');
  await page.getByLabel('API key').fill(args.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/console/overview');
  check(await page.locator('h1').textContent() === 'Overview', 'the overview heading');

  // The session cookie as the browser holds it: not readable by script, Secure, Strict.
  const session = (await context.cookies()).find((c) => c.name === 'potp_console');
  check(session && session.httpOnly && session.secure && session.sameSite === 'Strict',
    `session cookie attributes ${JSON.stringify(session && { httpOnly: session.httpOnly, secure: session.secure, sameSite: session.sameSite })}`);
  check(!(await page.evaluate(() => document.cookie)).includes('potp_console='), 'the session cookie is readable by script');

  // The seeded numbers, per system: requests and sends.
  for (const [system, want] of Object.entries(args.expect.systems)) {
    const cells = await page.locator('section[aria-labelledby="systems"] tbody tr', { has: page.locator(`th:text-is("${system}")`) })
      .locator('td').allTextContents();
    check(cells[0] === String(want.requests) && cells[1] === String(want.sends),
      `${system}: requests/sends ${cells[0]}/${cells[1]}, want ${want.requests}/${want.sends}`);
  }
  check(await page.getByText(args.expect.cost).count() > 0, `the cost ${args.expect.cost}`);
  const chart = page.locator('figure.chart svg[role="img"]');
  check(await chart.count() === 1, 'one chart');
  check(await chart.locator('rect').count() === args.expect.bars, `${await chart.locator('rect').count()} bars, want ${args.expect.bars}`);
  check(await page.locator('ul.legend li').allTextContents().then((l) => l.join(',')) === args.expect.legend,
    `legend ${await page.locator('ul.legend li').allTextContents()}`);
  // The embedded stylesheet applied under the policy.
  const background = await page.locator('header').evaluate((e) => getComputedStyle(e).backgroundColor);
  check(background === 'rgb(246, 248, 250)', `header background ${background}: stylesheet not applied`);
  const violations = await audit('overview');
  if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/console-overview.png`, fullPage: true });

  // Keys: create one, see its secret once, copy it, then revoke it after confirming.
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: args.base });
  await page.getByRole('link', { name: 'Keys' }).click();
  await page.waitForURL('**/console/keys');
  await audit('keys');
  await page.getByLabel('System').fill('erp');
  await page.getByLabel('messages:send').check();
  await page.getByRole('button', { name: 'Create a key' }).click();
  await page.waitForURL('**/console/keys');
  const secret = await page.getByLabel('Secret').inputValue();
  check(secret.startsWith('potp_sys_'), `the new secret ${secret.slice(0, 9)}...`);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.getByRole('button', { name: 'Copied' }).waitFor();
  check(await page.evaluate(() => navigator.clipboard.readText()) === secret, 'the copy button copies the secret');
  await audit('new key');
  if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/console-key-created.png` });
  await page.getByRole('link', { name: 'All keys' }).click();
  check(!(await page.content()).includes(secret), 'the secret is shown again');
  const row = page.locator('tbody tr', { has: page.locator('td:text-is("erp")') });
  await row.getByRole('link', { name: 'Revoke' }).click();
  await page.waitForURL('**/revoke');
  await audit('revoke confirmation');
  await page.getByRole('button', { name: 'Revoke the key' }).click();
  check(await page.getByRole('status').textContent().then((t) => t.startsWith('Revoked:')), 'revoked');
  await page.getByRole('link', { name: 'All keys' }).click();
  check(await row.locator('td').nth(8).textContent() === 'revoked', 'the key shows as revoked');
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.waitForURL('**/console/overview');

  // Japanese, by the switch on the page; remembered on the next page.
  await page.getByRole('link', { name: '日本語' }).click();
  await page.waitForURL('**/console/overview?lang=ja');
  check(await page.locator('h1').textContent() === '概要', 'the Japanese heading');
  check(await page.locator('html').getAttribute('lang') === 'ja', 'lang="ja"');
  await audit('overview (ja)');
  if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/console-overview-ja.png`, fullPage: true });
  await page.goto(`${args.base}/console/overview`);
  check(await page.locator('h1').textContent() === '概要', 'the language is remembered');

  // Signing out ends the session: the overview is the sign-in form again.
  await page.getByRole('button', { name: 'サインアウト' }).click();
  await page.waitForURL('**/console/signin');
  await page.goto(`${args.base}/console/overview`);
  check(new URL(page.url()).pathname === '/console/signin', 'signed out');

  check(errors.length === 0, `console errors: ${errors.join(' | ')}`);
  if (failures.length === 0) {
    console.log(`console in ${browser.version()}: sign-in, overview, keys (create, copy, revoke), Japanese, sign-out; ${violations} minor accessibility findings, none serious`);
  }
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  process.exit(1);
}
