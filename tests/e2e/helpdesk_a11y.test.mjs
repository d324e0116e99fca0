// Every help-desk page against WCAG 2.1 A and AA, as axe-core (npm) checks
// them in Chromium, at a desktop and a phone width; the self-service pages
// too, as the bar the help desk is held to ("like the portal"). Also: no
// sideways scrolling of the page on a phone (wide tables scroll in their
// own box), one h1, and a screenshot of each page at each width.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import {
	ADMIN_PASSWORD, DESKTOP, PHONE, Server, launchBrowser, newContext, seedStandard, shot,
	signIn, submit,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

let server, data, browser;

before(async () => {
	server = new Server();
	await server.start();
	data = await seedStandard(server);
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close().catch(() => {});
	await server?.stop();
});

/** axe's WCAG 2.1 A/AA violations on the page, as readable lines. */
async function violations(page) {
	await page.evaluate(AXE);
	const found = await page.evaluate(async (tags) => {
		// eslint-disable-next-line no-undef
		const r = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
		return r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ` +
			v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; '));
	}, TAGS);
	return found;
}

async function check(page, label, viewport) {
	const problems = await violations(page);
	assert.deepEqual(problems, [], `${label} at ${viewport.width} px`);
	const layout = await page.evaluate(() => ({
		scroll: document.documentElement.scrollWidth,
		inner: window.innerWidth,
		h1: document.querySelectorAll('h1').length,
		lang: document.documentElement.lang,
	}));
	assert.ok(layout.scroll <= layout.inner, `${label} scrolls sideways at ${viewport.width} px ` +
		`(${layout.scroll} > ${layout.inner})`);
	assert.equal(layout.h1, 1, `${label}: one h1`);
	assert.ok(layout.lang, `${label}: the page says its language`);
	await shot(page, `a11y ${viewport.width}`, label);
}

for (const viewport of [DESKTOP, PHONE]) {
	describe(`WCAG 2.1 AA at ${viewport.width} px`, () => {
		test('self-service pages', async () => {
			// bypassCSP: axe is injected as a script the policy would refuse
			const context = await newContext(browser, { viewport, bypassCSP: true });
			const page = await context.newPage();
			try {
				await page.goto(server.url + '/login');
				await check(page, 'sign-in', viewport);
				await signIn(page, server, data.people.alice);
				await check(page, 'notice', viewport);
				await submit(page, '/notice', () =>
					page.locator('form[action="/notice"] button[name="accept"]').click());
				await check(page, 'recover form', viewport);
			} finally {
				await context.close();
			}
		});

		test('help-desk pages', async () => {
			const context = await newContext(browser, { viewport, bypassCSP: true });
			const page = await context.newPage();
			const dev = data.alicePc.device_id;
			try {
				await page.goto(server.url + '/login');
				await signIn(page, server, { login: 'admin', password: ADMIN_PASSWORD });
				if (new URL(page.url()).pathname === '/notice')
					await submit(page, '/notice', () =>
						page.locator('form[action="/notice"] button[name="accept"]').click());
				const pages = [
					['help desk', '/helpdesk'],
					['recovery form', '/helpdesk/recover'],
					['device search', '/helpdesk/devices?q=pc-'],
					['device page', `/helpdesk/devices/${dev}`],
					['lost device', `/helpdesk/devices/${dev}/lost`],
					['audit report', '/helpdesk/reports/audit'],
					['keys not rotated', '/helpdesk/reports/unrotated'],
					['compliance', '/helpdesk/reports/compliance'],
					['users', '/helpdesk/admin/users'],
					['enrollment tokens', '/helpdesk/admin/enrollment'],
				];
				for (const [label, p] of pages) {
					const resp = await page.goto(server.url + p);
					assert.equal(resp.status(), 200, `${label}: ${p}`);
					await check(page, label, viewport);
				}
				// the form's errors, then a key (the full ID: one match)
				await page.goto(server.url + '/helpdesk/recover');
				await submit(page, '/helpdesk/recover', () =>
					page.locator('form[action="/helpdesk/recover"] [type=submit]').first().click());
				await check(page, 'recovery form with errors', viewport);
				await page.locator('input[name="key_id"]').fill(data.aliceKey.id);
				await page.locator('input[name="reason"][value="lost_pin"]').check();
				const resp = await submit(page, '/helpdesk/recover', () =>
					page.locator('form[action="/helpdesk/recover"] [type=submit]').first().click());
				assert.equal(resp.status(), 200, 'the key page');
				await check(page, 'key page', viewport);
				// the audit report now has a record to show
				await page.goto(server.url + '/helpdesk/reports/audit');
				await check(page, 'audit report with a record', viewport);
			} finally {
				await context.close();
			}
		});
	});
}
