// The help desk's administration in a real browser (issue 10 point 6): an
// administrator adds a user with a generated password shown once, the new
// user signs in with it, a mistake is said beside its field, and the last
// administrator cannot disable themselves; at a desktop and a phone width.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
	ADMIN_PASSWORD, DESKTOP, PHONE, Server, launchBrowser, newContext, shot, signIn, submit,
} from './harness.mjs';

const USERS = '/helpdesk/admin/users';
const ADMIN = { login: 'admin', password: ADMIN_PASSWORD };

let server, browser;

before(async () => {
	server = new Server();
	await server.start();
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close().catch(() => {});
	await server?.stop();
});

/** Signs in (accepting the notice when it is shown) and opens pathname. */
async function signedIn(page, person, pathname) {
	await signIn(page, server, person);
	if (new URL(page.url()).pathname === '/notice')
		await submit(page, '/notice', () =>
			page.locator('form[action="/notice"] button[name="accept"]').click());
	const resp = await page.goto(server.url + pathname);
	return resp;
}

/** The page is no wider than the viewport (nothing to scroll sideways but tables). */
async function assertFits(page, what) {
	const { doc, view } = await page.evaluate(() => ({
		doc: document.documentElement.scrollWidth, view: window.innerWidth,
	}));
	assert.ok(doc <= view, `${what}: the page is ${doc}px wide in a ${view}px window`);
}

describe('help desk administration', () => {
	for (const [width, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
		test(`users page at ${width} width: add a user, password shown once, signs in`, async () => {
			const name = `admin-users-${width}`;
			const context = await newContext(browser, { viewport });
			const page = await context.newPage();
			try {
				const resp = await signedIn(page, ADMIN, USERS);
				assert.equal(resp.status(), 200);
				assert.equal(await page.locator('h1').innerText(), 'Users');
				assert.equal(await page.locator('nav.hdnav [aria-current="page"]').innerText(),
					'Users');
				await assertFits(page, 'users page');
				await shot(page, name, '1 users');

				// A mistake is said beside its field, and the name is kept.
				await page.locator('#add-name').fill('carol smith');
				let r = await submit(page, USERS, () =>
					page.getByRole('button', { name: 'Add user' }).click());
				assert.equal(r.status(), 422);
				assert.match(await page.locator('#add-name-error').innerText(), /without spaces/);
				assert.equal(await page.locator('#add-name').getAttribute('aria-invalid'), 'true');
				assert.equal(await page.locator('#add-name').inputValue(), 'carol smith');
				await shot(page, name, '2 name refused');

				const user = `CORP\\carol${width}`;
				await page.locator('#add-name').fill(user);
				await page.getByRole('checkbox', { name: /^Help desk\b/ }).check();
				await page.getByRole('checkbox', { name: /^Reports/ }).check();
				r = await submit(page, USERS, () =>
					page.getByRole('button', { name: 'Add user' }).click());
				assert.equal(r.status(), 200);
				assert.match(r.headers()['cache-control'] ?? '', /no-store/);
				assert.match(await page.locator('h1').innerText(), /was added/);
				const pw = (await page.locator('#secret').innerText()).trim();
				assert.match(pw, /^[A-Za-z0-9]{20}$/);
				await assertFits(page, 'password page');
				await shot(page, name, '3 password shown once');

				// Done leads to the account's page; the password is not there.
				await Promise.all([page.waitForNavigation(),
					page.getByRole('link', { name: 'Done' }).click()]);
				assert.equal(new URL(page.url()).pathname, USERS);
				assert.ok(!(await page.content()).includes(pw));
				assert.match(await page.locator('.facts').innerText(), /Help desk, Reports/);
				await assertFits(page, 'user page');
				await shot(page, name, '4 user page');

				// The new user signs in with it.
				const other = await newContext(browser, { viewport });
				const p2 = await other.newPage();
				const r2 = await signedIn(p2, { login: user, password: pw }, '/helpdesk');
				assert.equal(r2.status(), 200);
				await other.close();

				// The last administrator cannot disable themselves, and is told why.
				await page.goto(server.url + USERS + '?name=admin');
				r = await submit(page, USERS, () =>
					page.getByRole('button', { name: 'Disable' }).click());
				assert.equal(r.status(), 409);
				assert.match(await page.getByRole('alert').innerText(),
					/only enabled account with the Administrator role/);
				await shot(page, name, '5 last admin refused');

				assert.deepEqual(context.rec.pageErrors, []);
				assert.ok(!server.log.includes(pw), 'the password is not in the log');
			} finally {
				await context.close();
			}
		});
	}

	test('enrollment token shown once at phone width', async () => {
		const name = 'admin-enrollment-phone';
		const context = await newContext(browser, { viewport: PHONE });
		const page = await context.newPage();
		try {
			await signedIn(page, ADMIN, '/helpdesk/admin/enrollment');
			await page.locator('#expires').fill('7d');
			await page.locator('#uses').fill('3');
			const r = await submit(page, '/helpdesk/admin/enrollment', () =>
				page.getByRole('button', { name: 'Create token' }).click());
			assert.equal(r.status(), 200);
			const token = (await page.locator('#secret').innerText()).trim();
			assert.ok(token.length > 20);
			await assertFits(page, 'token page');
			await shot(page, name, '1 token shown once');
			await Promise.all([page.waitForNavigation(),
				page.getByRole('link', { name: 'Done' }).click()]);
			assert.ok(!(await page.content()).includes(token));
			assert.match(await page.locator('table.adm-tokens tbody').innerText(), /Valid/);
			await assertFits(page, 'tokens page');
			await shot(page, name, '2 tokens');
			assert.ok(!server.log.includes(token), 'the token is not in the log');
		} finally {
			await context.close();
		}
	});
});
