// The help desk's devices in a real browser (issue 10 point 3, SPEC §4):
// search, the device page, adding an association and the lost-device view,
// at a desktop and a phone width, with screenshots in artifacts/.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
	DESKTOP, PHONE, Server, acceptNotice, keyId, launchBrowser, newContext, recoveryPassword,
	requestKey, shot, signIn, submit,
} from './harness.mjs';

const STAFF = { account: 'CORP\\hdadmin', login: 'hdadmin', password: 'Helpdesk-Admin-2026!' };
const ALICE = { account: 'CORP\\alice', login: 'alice', password: 'Alice-Secret-2026!' };
const CAROL = 'CORP\\carol.newowner';

let server, browser, device, keys;

/** A device with an OS drive (three keys) and a data drive that is not protected. */
async function seedDevice() {
	keys = {
		active: { id: keyId(), password: recoveryPassword() },
		disclosed: { id: keyId(), password: recoveryPassword() },
		data: { id: keyId(), password: recoveryPassword() },
	};
	const reg = await server.api('/api/v1/register', {
		enrollment_token: server.enrollmentToken(), name: 'PC-DESK-0815', domain: 'CORP',
		os: 'Windows 11 Enterprise 23H2',
	});
	assert.equal(reg.status, 201);
	const vols = [
		{ id: randomUUID().toUpperCase(), mount: 'C:', type: 'os', protection: 'on',
			encryption: 'xts_aes_256', percent_encrypted: 100,
			recovery_keys: [keys.active, keys.disclosed].map((k) =>
				({ key_id: k.id, recovery_password: k.password })) },
		{ id: randomUUID().toUpperCase(), mount: 'D:', type: 'fixed', protection: 'suspended',
			encryption: 'xts_aes_128', percent_encrypted: 63,
			recovery_keys: [{ key_id: keys.data.id, recovery_password: keys.data.password }] },
	];
	const c = await server.api('/api/v1/checkin', {
		os: 'Windows 11 Enterprise 23H2', volumes: vols,
		logons: [{ user: ALICE.account, type: 'local', at: '2026-11-20T08:00:00Z' },
			{ user: 'CORP\\it.remote', type: 'remote', at: '2026-11-21T09:30:00Z' }],
	}, reg.body.device_secret);
	assert.equal(c.status, 200);
	return { ...reg.body, name: 'PC-DESK-0815' };
}

before(async () => {
	server = new Server();
	await server.start();
	server.cli(['user', 'add', STAFF.account, '--role', 'helpdesk_admin', '--password-stdin'],
		STAFF.password + '\n');
	server.addUser(ALICE.account, ALICE.password);
	device = await seedDevice();
	for (const n of ['PC-DESK-0816', 'PC-DESKTOP-0001'])
		await server.device({ name: n, keys: [{ id: keyId(), password: recoveryPassword() }],
			logons: [] });
	browser = await launchBrowser();
	// alice gets one key through self-service: it shows as disclosed
	const context = await newContext(browser);
	const page = await context.newPage();
	try {
		await signIn(page, server, ALICE);
		await acceptNotice(page);
		assert.equal((await requestKey(page, keys.disclosed.id.slice(0, 8))).status(), 200);
	} finally {
		await context.close();
	}
});

after(async () => {
	await browser?.close().catch(() => {});
	await server?.stop();
});

/** Signs the help-desk administrator in (and past the notice, if shown). */
async function staffSignIn(page) {
	await signIn(page, server, STAFF);
	if (new URL(page.url()).pathname === '/notice')
		await acceptNotice(page);
}

async function noSidewaysScroll(page, what) {
	const [sw, iw] = await page.evaluate(() =>
		[document.scrollingElement.scrollWidth, window.innerWidth]);
	assert.ok(sw <= iw, `${what}: the page scrolls sideways (${sw} > ${iw})`);
}

/** No recovery password anywhere in the page's HTML. */
async function noPasswords(page, what) {
	const html = await page.content();
	for (const k of Object.values(keys)) {
		assert.ok(!html.includes(k.password), `${what} shows a recovery password`);
		assert.ok(!html.includes(k.password.replace(/-/g, '')), `${what} shows a password's digits`);
	}
}

/** Every table header cell has a scope; every input has a label. */
async function accessible(page, what) {
	const bad = await page.evaluate(() => {
		const out = [];
		for (const th of document.querySelectorAll('main th'))
			if (!th.getAttribute('scope'))
				out.push(`th without scope: ${th.textContent.trim()}`);
		for (const input of document.querySelectorAll('main input:not([type=hidden])'))
			if (!input.labels || input.labels.length === 0)
				out.push(`input without label: ${input.name}`);
		if (document.querySelectorAll('main h1').length !== 1)
			out.push('not one h1');
		return out;
	});
	assert.deepEqual(bad, [], what);
}

/**
 * Every table cell lies inside the viewport: nothing needs sideways
 * scrolling to be read (on a phone each row is a card).
 */
async function everyCellInView(page, what) {
	const out = await page.evaluate(() => {
		const bad = [];
		for (const c of document.querySelectorAll('main tbody th, main tbody td')) {
			const r = c.getBoundingClientRect();
			if (r.left < 0 || r.right > window.innerWidth + 0.5)
				bad.push(`${c.textContent.trim().slice(0, 30)} at ${r.left}..${r.right}`);
		}
		return bad;
	});
	assert.deepEqual(out, [], `${what}: cells outside the viewport`);
}

describe('help desk: devices', () => {
	for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
		test(`search, device page, association and lost view (${label})`, async () => {
			const name = `hd-devices-${label}`;
			const context = await newContext(browser, { viewport });
			const page = await context.newPage();
			const carol = `${CAROL}.${label}`;
			try {
				await staffSignIn(page);
				await page.goto(server.url + '/helpdesk/devices');
				await accessible(page, 'search form');
				await shot(page, name, '1 search form');

				// Lower case, a prefix: three devices, not a fourth
				await page.getByLabel('Computer name').fill('pc-desk');
				await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
				assert.equal(new URL(page.url()).searchParams.get('q'), 'pc-desk');
				const found = await page.locator('table.devlist tbody th a').allTextContents();
				assert.deepEqual(found, ['PC-DESK-0815', 'PC-DESK-0816', 'PC-DESKTOP-0001']);
				assert.match(await page.locator('.devsummary').innerText(), /3 devices/);
				await accessible(page, 'search results');
				await noSidewaysScroll(page, 'search results');
				await shot(page, name, '2 search results');

				await Promise.all([page.waitForNavigation(),
					page.getByRole('link', { name: 'PC-DESK-0815' }).click()]);
				assert.equal(new URL(page.url()).pathname, `/helpdesk/devices/${device.device_id}`);
				assert.equal(await page.locator('main h1').innerText(), 'PC-DESK-0815');
				const main = await page.locator('main').innerText();
				for (const what of ['Windows 11 Enterprise 23H2', 'XTS-AES 256', '63 %',
					'Suspended', 'CORP\\alice', 'CORP\\it.remote', keys.active.id,
					keys.disclosed.id, keys.data.id, 'Disclosed'])
					assert.ok(main.includes(what), `the device page shows ${what}`);
				for (const h of ['Drives', 'Users', 'Recovery key history'])
					assert.ok(await page.getByRole('heading', { name: h, exact: true }).isVisible(), h);
				await noPasswords(page, 'the device page');
				await accessible(page, 'device page');
				await everyCellInView(page, 'device page');
				await noSidewaysScroll(page, 'device page');
				await shot(page, name, '3 device page');

				// An empty name: 422, the field marked, the page otherwise the same
				let resp = await submit(page, `/helpdesk/devices/${device.device_id}/associations`,
					() => page.getByRole('button', { name: 'Add association' }).click());
				assert.equal(resp.status(), 422);
				assert.equal(await page.locator('#user').getAttribute('aria-invalid'), 'true');
				assert.ok(await page.locator('#user').evaluate((e) => e === document.activeElement),
					'the field with the error has the focus');
				await shot(page, name, '4 association error');

				// Typed by keyboard, sent with Enter
				await page.locator('#user').pressSequentially(carol);
				resp = await submit(page, `/helpdesk/devices/${device.device_id}/associations`,
					() => page.keyboard.press('Enter'));
				assert.equal(resp.status(), 303);
				assert.match(await page.locator('.devdone').innerText(), /association was added/);
				const row = page.locator('#associations tbody tr', { hasText: carol });
				assert.match(await row.innerText(), /CORP\\hdadmin/);
				await noSidewaysScroll(page, 'device page after adding');
				await shot(page, name, '5 association added');
				for (const [id, step] of [['h-users', '5b users'], ['h-keys', '5c key history']]) {
					await page.locator('#' + id).scrollIntoViewIfNeeded();
					await page.evaluate((i) => document.getElementById(i).scrollIntoView(), id);
					await shot(page, name, step, { fullPage: false });
				}

				// The key history scrolls inside its own region on a narrow screen
				const region = page.locator('.tablewrap[aria-labelledby="h-keys"]');
				await region.focus();
				assert.ok(await region.evaluate((e) => e === document.activeElement),
					'the key history region takes the keyboard focus');

				await Promise.all([page.waitForNavigation(),
					page.getByRole('link', { name: /Lost or stolen/ }).click()]);
				assert.equal(new URL(page.url()).pathname,
					`/helpdesk/devices/${device.device_id}/lost`);
				const lost = await page.locator('main').innerText();
				assert.match(lost, /Not every drive was protected/);
				assert.match(lost, /Not protected: protection suspended/);
				assert.match(lost, /less than an hour ago/);
				await noPasswords(page, 'the lost view');
				await accessible(page, 'lost view');
				await everyCellInView(page, 'lost view');
				await noSidewaysScroll(page, 'lost view');
				await shot(page, name, '6 lost view');

				// In Swedish the longer column names still fit
				await page.goto(`${server.url}/helpdesk/devices/${device.device_id}?lang=sv`);
				assert.ok(await page.getByRole('heading', { name: 'Återställningsnycklarnas historik' })
					.isVisible());
				await everyCellInView(page, 'device page in Swedish');
				await noSidewaysScroll(page, 'device page in Swedish');
				await shot(page, name, '7 device page in Swedish');
				await page.goto(`${server.url}/helpdesk/devices/${device.device_id}/lost`);
				await everyCellInView(page, 'lost view in Swedish');
				await shot(page, name, '8 lost view in Swedish');

				assert.deepEqual(context.rec.pageErrors, []);
				// (the 422 above is reported as a failed load: not a page error)
				assert.deepEqual(context.rec.console.filter((m) => m.type === 'error' &&
					!/Failed to load resource: .* 422/.test(m.text)), []);
			} finally {
				await context.close();
			}
		});
	}
});
