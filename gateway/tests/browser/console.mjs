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
  // The revoked key's next API call is refused, and nothing is sent.
  const afterRevoke = await fetch(`${args.base}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to: '+819012345677', code: '482913' }),
  });
  check(afterRevoke.status === 401, `the revoked key's call answered ${afterRevoke.status}`);
  // The create form posted without its CSRF token (the field taken out of the page; the
  // policy blocks script requests, so it goes as a real form post): refused, no key made.
  await page.getByLabel('System').fill('forged');
  await page.getByLabel('messages:send').check();
  await page.evaluate(() => document.querySelector('form[action="/console/keys"] input[name="csrf"]').remove());
  const [forged] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/console/keys') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Create a key' }).click(),
  ]);
  check(forged.status() === 403, `a post without the CSRF token answered ${forged.status()}`);
  await page.goto(`${args.base}/console/keys`);
  check(await page.locator('td:text-is("forged")').count() === 0, 'the forged post made a key');

  // Systems: billing's page, and its CSV export byte for byte the usage API's.
  await page.getByRole('link', { name: 'Systems' }).click();
  await page.waitForURL('**/console/systems');
  // The seeded sends' month (the gateway's clock stands still on their instant, which a
  // range ending now leaves out).
  await page.getByLabel('From').fill(args.range.from);
  await page.getByLabel('To').fill(args.range.to);
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForURL('**/console/systems?*');
  await audit('systems');
  await page.getByRole('link', { name: 'billing', exact: true }).click();
  await page.waitForURL('**/console/systems?system=billing*');
  await audit('system billing');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /Download as CSV/ }).click(),
  ]);
  const downloaded = readFileSync(await download.path(), 'utf8');
  const usage = await fetch(`${args.base}/v1/usage?system=billing&from=${args.range.from}&to=${args.range.to}&group_by=system,day,country,provider&format=csv`,
    { headers: { authorization: `Bearer ${args.viewerKey}` } }).then((r) => r.text());
  check(downloaded === usage && downloaded.includes('billing,'), `the CSV differs from /v1/usage:\n${downloaded}\n${usage}`);
  if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/console-system.png`, fullPage: true });

  // Conversion and abuse, providers.
  await page.getByRole('link', { name: 'Conversion and abuse' }).click();
  await page.waitForURL('**/console/abuse');
  await audit('abuse');
  if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/console-abuse.png`, fullPage: true });
  await page.getByRole('link', { name: 'Providers' }).click();
  await page.waitForURL('**/console/providers');
  await audit('providers');
  check(await page.locator('section[aria-labelledby="now"] td:text-is("primary")').count() === 1, 'the primary provider');

  // Audit: search for the refused send, open it.
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.waitForURL('**/console/audit');
  await audit('audit');
  await page.getByLabel('Outcome').fill(args.expect.refusal);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL('**/console/audit?*');
  const found = page.locator('table.audit tbody tr');
  check(await found.count() === 1, `${await found.count()} records for ${args.expect.refusal}`);
  if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/console-audit.png`, fullPage: true });
  await found.locator('a').first().click();
  await page.waitForURL('**/console/audit/*');
  check(await page.locator('dd', { hasText: args.expect.refusal }).count() === 1, 'the record shows its outcome');
  await audit('audit record');

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

  // A viewer sees the keys but cannot change them: the page has no form, and a post
  // with the viewer's own valid token is refused.
  const viewerContext = await browser.newContext({ locale: 'en-US' });
  const viewer = await viewerContext.newPage();
  await viewer.goto(`${args.base}/console/signin`);
  await viewer.getByLabel('API key').fill(args.viewerKey);
  await viewer.getByRole('button', { name: 'Sign in' }).click();
  await viewer.waitForURL('**/console/overview');
  await viewer.goto(`${args.base}/console/keys`);
  check(await viewer.getByRole('button', { name: 'Create a key' }).count() === 0, 'a viewer is offered the create form');
  // The create form rebuilt in the viewer's page with the viewer's own valid token.
  const [refused] = await Promise.all([
    viewer.waitForResponse((r) => r.url().endsWith('/console/keys') && r.request().method() === 'POST'),
    viewer.evaluate(() => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = '/console/keys';
      for (const [name, value] of [['csrf', document.querySelector('input[name="csrf"]').value], ['owner', 'by-viewer'], ['scope:messages:send', 'on']]) {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = name;
        input.value = value;
        form.append(input);
      }
      document.body.append(form);
      form.submit();
    }),
  ]);
  check(refused.status() === 403, `a viewer's key action answered ${refused.status()}`);
  await viewerContext.close();

  // Signing out ends the session: the overview is the sign-in form again.
  await page.getByRole('button', { name: 'サインアウト' }).click();
  await page.waitForURL('**/console/signin');
  await page.goto(`${args.base}/console/overview`);
  check(new URL(page.url()).pathname === '/console/signin', 'signed out');

  // The one 403 the forged post provoked is expected; nothing else.
  const refusedLoads = errors.filter((e) => e.includes('status of 403'));
  check(refusedLoads.length === 1, `${refusedLoads.length} refused loads, want the forged post's`);
  const unexpected = errors.filter((e) => !e.includes('status of 403'));
  check(unexpected.length === 0, `console errors: ${unexpected.join(' | ')}`);
  if (failures.length === 0) {
    console.log(`console in ${browser.version()}: sign-in, overview, keys (create, copy, revoke, refused after), CSRF, systems CSV = /v1/usage, abuse, providers, audit search, viewer refused, Japanese, sign-out; ${violations} minor accessibility findings, none serious`);
  }
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  process.exit(1);
}
