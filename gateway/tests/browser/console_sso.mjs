// Signs in to the console through the OpenID provider of oidc.mjs in Debian's Chromium:
// an administrator, a viewer, and a user with no console role.
//   node console_sso.mjs '{"base": "..."}'
import { chromium } from 'playwright-core';

const args = JSON.parse(process.argv[2]);
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});

// The provider's own login and consent pages (oidc-provider's interactions).
async function signIn(user) {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${args.base}/console/signin`);
  await page.getByRole('link', { name: "Sign in with your organisation's account" }).click();
  await page.locator('input[name="login"]').fill(user);
  await page.locator('input[name="password"]').fill('any');
  await page.locator('button[type="submit"]').click();
  const consent = page.locator('button[type="submit"]', { hasText: 'Continue' });
  await Promise.race([
    consent.waitFor({ timeout: 10000 }).then(() => consent.click()),
    page.waitForURL(`${args.base}/console/**`, { timeout: 10000 }),
  ]);
  await page.waitForURL(`${args.base}/console/**`);
  await page.waitForLoadState('networkidle');
  return { context, page };
}

try {
  {
    const { context, page } = await signIn('alice');
    await page.waitForURL('**/console/overview');
    check(await page.locator('h1').textContent() === 'Overview', `alice: ${page.url()}`);
    check(await page.locator('.who').textContent() === 'Signed in as alice@example.com (administrator)',
      `alice: ${await page.locator('.who').textContent()}`);
    const session = (await context.cookies()).find((c) => c.name === 'potp_console');
    check(session && session.sameSite === 'Strict' && session.httpOnly, 'the SSO session cookie');
    check(!(await context.cookies()).some((c) => c.name === 'potp_console_sso'), 'the sign-in state is spent');
    await page.getByRole('link', { name: 'Keys' }).click();
    check(await page.getByRole('button', { name: 'Create a key' }).count() === 1, 'alice may create keys');
    await context.close();
  }
  {
    const { context, page } = await signIn('bob');
    await page.waitForURL('**/console/overview');
    check(await page.locator('.who').textContent() === 'Signed in as bob@example.com (viewer)',
      `bob: ${await page.locator('.who').textContent()}`);
    await page.getByRole('link', { name: 'Keys' }).click();
    check(await page.getByRole('button', { name: 'Create a key' }).count() === 0, 'bob may not create keys');
    await context.close();
  }
  {
    const { context, page } = await signIn('carol');
    check(await page.getByRole('alert').textContent().then((t) => t.startsWith('Your account has no console role')),
      `carol: ${page.url()}`);
    await page.goto(`${args.base}/console/overview`);
    check(new URL(page.url()).pathname === '/console/signin', 'carol has no session');
    await context.close();
  }
  if (failures.length === 0) console.log('single sign-on: administrator, viewer, and no role refused');
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  process.exit(1);
}
