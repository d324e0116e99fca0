// Help-desk recovery in a real browser (issue 10 point 2, SPEC §4): a
// helpdesk user recovers the key of a named user's computer, Copy and Save
// (a text file made in the page, no second request), a help-desk
// administrator chooses among matching keys, errors at the fields; on a
// desktop and a phone width, with screenshots, no CSP violations.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import {
	DESKTOP, PHONE, Server, launchBrowser, newContext, seedStandard, shot, shownKey,
	signIn, submit,
} from './harness.mjs';

const PASSWORD_RE = /^(\d{6})(-\d{6}){7}$/;
const desk = { account: 'CORP\\hd-anna', login: 'CORP\\hd-anna', password: 'Anna-Desk-2026!' };
const chief = { account: 'CORP\\hd-boss', login: 'CORP\\hd-boss', password: 'Boss-Desk-2026!' };

let server, data, browser;

before(async () => {
	server = new Server();
	await server.start();
	data = await seedStandard(server);
	server.cli(['user', 'add', desk.account, '--role', 'helpdesk', '--password-stdin'],
		desk.password + '\n');
	server.cli(['user', 'add', chief.account, '--role', 'helpdesk_admin', '--password-stdin'],
		chief.password + '\n');
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close().catch(() => {});
	await server?.stop();
});

/** A context that reports CSP violations into violations. */
async function contextWith(viewport, violations) {
	const context = await newContext(browser, { viewport, acceptDownloads: true });
	await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
	await context.exposeBinding('__kwCsp', (_src, v) => violations.push(v));
	await context.addInitScript(() => {
		document.addEventListener('securitypolicyviolation', (e) => {
			window.__kwCsp(`${e.violatedDirective} ${e.blockedURI}`);
		});
	});
	return context;
}

/** Signs person in and opens the help-desk recovery form. */
async function atForm(page, person) {
	await page.goto(server.url + '/login');
	await signIn(page, server, person);
	const r = await page.goto(server.url + '/helpdesk/recover');
	assert.equal(r.status(), 200);
}

/** Fills the form (fields left undefined untouched) and presses Get key. */
async function ask(page, { keyId, endUser, reason, comment }) {
	if (keyId !== undefined)
		await page.locator('#key_id').fill(keyId);
	if (endUser !== undefined)
		await page.locator('#end_user').fill(endUser);
	if (reason)
		await page.getByLabel(reason, { exact: true }).check();
	if (comment !== undefined)
		await page.locator('#comment').fill(comment);
	return submit(page, '/helpdesk/recover', () =>
		page.locator('form.hdrecover button[type=submit]').click());
}

/** Save: the download's name and text, and the requests made meanwhile. */
async function save(page, context) {
	const before = context.rec.requests.length;
	const [download] = await Promise.all([
		page.waitForEvent('download'),
		page.getByRole('button', { name: 'Save as text file' }).click(),
	]);
	const text = fs.readFileSync(await download.path(), 'utf8');
	const requests = context.rec.requests.slice(before).filter((u) => !u.startsWith('blob:'));
	return { name: download.suggestedFilename(), text, requests };
}

async function noSidewaysScroll(page, what) {
	const [sw, iw] = await page.evaluate(() =>
		[document.scrollingElement.scrollWidth, window.innerWidth]);
	assert.ok(sw <= iw, `${what} scrolls sideways (${sw} > ${iw})`);
}

describe('help-desk recovery', () => {
	for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
		test(`helpdesk: a named user's key, Copy and Save (${label})`, async () => {
			const name = `hd-recover-${label}`;
			const violations = [];
			const context = await contextWith(viewport, violations);
			const page = await context.newPage();
			try {
				await atForm(page, desk);
				await noSidewaysScroll(page, 'the form');
				await assert.doesNotReject(page.getByRole('link', { name: 'Recover a key' })
					.and(page.locator('[aria-current="page"]')).waitFor());
				await shot(page, name, `${label} 1 form`);

				// Without the user: told at the field, nothing found.
				let r = await ask(page, { keyId: data.aliceKey.id.slice(0, 8),
					reason: 'Lost startup key' });
				assert.equal(r.status(), 422);
				assert.equal(await page.locator('#end_user').getAttribute('aria-invalid'), 'true');
				assert.match(await page.locator('#end_user-error').innerText(),
					/Enter the name of the user you are helping/);
				await shot(page, name, `${label} 2 no user`);

				// Bob's key shares alice's prefix; for alice only hers counts.
				r = await ask(page, { endUser: 'alice@corp.example.com' });
				assert.equal(r.status(), 200);
				assert.match(r.headers()['cache-control'] ?? '', /no-store/);
				const box = await page.locator('#keybox').innerText();
				assert.ok(box.includes(data.alicePc.name), 'her computer');
				assert.ok(box.includes(data.aliceKey.id), 'the full key ID');
				assert.ok(!box.includes(data.bobPc.name));
				const shown = await shownKey(page);
				assert.match(shown, PASSWORD_RE);
				assert.equal(shown, data.aliceKey.password);
				assert.match(await page.locator('main').innerText(),
					/The computer is told to replace this key at its next check-in/);
				await noSidewaysScroll(page, 'the key page');
				await shot(page, name, `${label} 3 key`);

				// Copy puts exactly the key on the clipboard.
				const copy = page.getByRole('button', { name: 'Copy key' });
				await assert.doesNotReject(copy.waitFor({ state: 'visible' }));
				await copy.click();
				await assert.doesNotReject(page.locator('#copied').getByText('Copied').waitFor());
				assert.equal(await page.evaluate(() => navigator.clipboard.readText()),
					data.aliceKey.password);

				// Save downloads computer, key ID and key, made in the page.
				const file = await save(page, context);
				assert.equal(file.name, `BitLocker Recovery Key ${data.aliceKey.id}.txt`);
				assert.equal(file.text,
					`Computer: ${data.alicePc.name}\r\n` +
					`Recovery key ID: ${data.aliceKey.id}\r\n` +
					`Recovery key: ${data.aliceKey.password}\r\n`);
				assert.deepEqual(file.requests, [], 'no request to the server for the file');
				await shot(page, name, `${label} 4 copied and saved`);

				// Buttons are large enough to tap.
				const sizes = await page.locator('main button:visible, main a.button:visible')
					.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().height));
				for (const h of sizes)
					assert.ok(h >= 44, `button height ${h} ≥ 44`);
				assert.deepEqual(violations, [], 'no CSP violations');
				assert.deepEqual(context.rec.pageErrors, [], 'no uncaught exceptions');
			} finally {
				await context.close();
			}
		});
	}

	test('helpdesk_admin: ambiguity lists the matching keys to choose from (phone)', async () => {
		const name = 'hd-recover-choices';
		const violations = [];
		const context = await contextWith(PHONE, violations);
		const page = await context.newPage();
		try {
			await atForm(page, chief);
			assert.match(await page.locator('label[for=end_user]').innerText(), /optional/);
			// Other needs a comment.
			let r = await ask(page, { keyId: data.shared.toLowerCase(), reason: 'Other' });
			assert.equal(r.status(), 422);
			assert.match(await page.locator('#comment-error').innerText(),
				/Describe the reason in the comment/);
			await shot(page, name, 'phone 1 comment needed');

			r = await ask(page, { comment: 'Ticket 4711: laptop in for repair' });
			assert.equal(r.status(), 409);
			const rows = page.locator('section.choices tbody tr');
			assert.equal(await rows.count(), 2);
			const table = await page.locator('section.choices table').innerText();
			for (const [k, pc] of [[data.aliceKey, data.alicePc], [data.bobKey, data.bobPc]]) {
				assert.ok(table.includes(k.id), `lists ${k.id}`);
				assert.ok(table.includes(pc.name), `lists ${pc.name}`);
			}
			assert.ok(!(await page.content()).includes(data.bobKey.password));
			await noSidewaysScroll(page, 'the choices');
			// The table fits: its Get key buttons are not hidden in a scroll.
			const [tw, cw] = await page.locator('section.choices .tablewrap')
				.evaluate((e) => [e.scrollWidth, e.clientWidth]);
			assert.ok(tw <= cw, `the choices table scrolls sideways (${tw} > ${cw})`);
			await shot(page, name, 'phone 2 choices');

			// Each choice's button is named by its key ID.
			r = await submit(page, '/helpdesk/recover', () =>
				page.getByRole('button', { name: `Get key ${data.bobKey.id}` }).click());
			assert.equal(r.status(), 200);
			assert.equal(await shownKey(page), data.bobKey.password);
			assert.ok((await page.locator('#keybox').innerText()).includes(data.bobPc.name));
			const file = await save(page, context);
			assert.ok(file.text.includes(data.bobKey.password), 'the saved file holds the key');
			assert.ok(file.text.includes(data.bobPc.name));
			await noSidewaysScroll(page, 'the key page');
			await shot(page, name, 'phone 3 key');
			await page.setViewportSize(DESKTOP);
			await shot(page, name, 'desktop 3 key');
			assert.deepEqual(violations, [], 'no CSP violations');
		} finally {
			await context.close();
		}
	});
});
