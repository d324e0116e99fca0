// Languages (SPEC §3.8, §3.9): Swedish from Accept-Language, the per-language
// notice and help-desk text, and the language switch that sticks.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
	DESKTOP, HELPDESK_EN, HELPDESK_SV, NOTICE_SV, Server, acceptNotice, launchBrowser,
	newContext, requestKey, seedStandard, shot, shownKey, signIn, submit,
} from './harness.mjs';

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

// English texts of the portal that must not show on a Swedish page. (The
// "English" link and the company name are the same in both languages.)
const ENGLISH = [
	'Sign in', 'User name', 'Password', 'For all other issues', 'Skip to content',
	'Notice', 'I accept', 'Get key', 'Reason', 'BIOS/TPM changed', 'Recovery key',
	'Computer', 'Copy key', 'Sign out', 'Your session', 'You will be signed out',
	'Continue', 'No recovery key', 'More than one', 'Enter at least', 'Choose the reason',
	'Check the ID', HELPDESK_EN,
];

/** Every English portal text found in the page's visible text and labels. */
async function englishLeftovers(page) {
	const text = await page.evaluate(() => {
		const parts = [document.body.innerText, document.title];
		for (const el of document.querySelectorAll('[aria-label], [data-template], [title], [placeholder]'))
			parts.push(el.getAttribute('aria-label') || '', el.getAttribute('data-template') || '',
				el.getAttribute('title') || '', el.getAttribute('placeholder') || '');
		for (const t of document.querySelectorAll('template, [hidden]'))
			parts.push(t.textContent);
		return parts.join('\n');
	});
	return ENGLISH.filter((e) => text.includes(e));
}

describe('Swedish', () => {
	test('5. Swedish from Accept-Language; the switch to English sticks', async () => {
		const name = '05-swedish';
		const context = await newContext(browser, { locale: 'sv-SE' });
		const page = await context.newPage();
		try {
			const first = await page.goto(server.url + '/');
			assert.match(await first.request().headerValue('accept-language') ?? '', /^sv-SE/,
				'the browser asks for Swedish');
			assert.equal(new URL(page.url()).pathname, '/login');
			assert.equal(await page.locator('html').getAttribute('lang'), 'sv');
			assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Logga in');
			assert.equal(await page.locator('form[action="/login"] button[type=submit]').innerText(), 'Logga in');
			assert.equal(await page.locator('label[for=username]').innerText(), 'Användarnamn');
			assert.ok((await page.locator('footer').innerText()).includes(HELPDESK_SV),
				'helpdesk_text.sv in the footer');
			assert.deepEqual(await englishLeftovers(page), [], 'no English on the Swedish sign-in page');
			await shot(page, name, 'phone 1 sign-in sv');

			// A failed sign-in, in Swedish.
			const bad = await signIn(page, server, { login: 'alice', password: 'not-her-password' });
			assert.equal(bad.status(), 401);
			assert.match(await page.getByRole('alert').innerText(), /Inloggningen misslyckades/);
			await shot(page, name, 'phone 2 sign-in failed sv');

			await signIn(page, server, data.people.alice);
			assert.equal(new URL(page.url()).pathname, '/notice');
			const notice = await page.locator('.notice').innerText();
			for (const para of NOTICE_SV.trim().split('\n\n'))
				assert.ok(notice.includes(para.trim()), 'notice.sv.txt is shown');
			assert.equal(await page.locator('form[action="/notice"] button').innerText(), 'Jag godkänner');
			assert.deepEqual(await englishLeftovers(page), [], 'no English on the Swedish notice');
			await shot(page, name, 'phone 3 notice sv');
			await acceptNotice(page);

			assert.equal(await page.locator('html').getAttribute('lang'), 'sv');
			assert.equal(await page.locator('form[action="/recover"] button[type=submit]').innerText(), 'Hämta nyckel');
			assert.ok((await page.locator('footer').innerText()).includes(HELPDESK_SV));
			assert.deepEqual(await englishLeftovers(page), [], 'no English on the Swedish recovery page');
			await shot(page, name, 'phone 4 recover sv');

			// The outcomes in Swedish.
			let resp = await requestKey(page, data.aliceKey.id.slice(0, 7), /BIOS\/TPM har ändrats/);
			assert.equal(resp.status(), 422);
			assert.match(await page.locator('#key_id-error').innerText(), /Ange minst de första 8 tecknen/);
			assert.deepEqual(await englishLeftovers(page), []);
			await shot(page, name, 'phone 5 error sv');
			resp = await requestKey(page, 'fedcba98fedcba98', /BIOS\/TPM har ändrats/);
			assert.equal(resp.status(), 404);
			const alert = await page.getByRole('alert').innerText();
			assert.match(alert, /Ingen återställningsnyckel/);
			assert.ok(alert.includes(HELPDESK_SV), 'the Swedish help-desk text in the not-found message');
			assert.deepEqual(await englishLeftovers(page), []);
			await shot(page, name, 'phone 6 not found sv');
			resp = await requestKey(page, data.twinKeys[0].id.slice(0, 8), /BIOS\/TPM har ändrats/);
			assert.equal(resp.status(), 409);
			assert.match(await page.locator('#key_id-error').innerText(), /Mer än en återställningsnyckel/);
			resp = await requestKey(page, data.aliceKey.id.slice(0, 8), /Glömt PIN-kod/);
			assert.equal(resp.status(), 200);
			assert.equal(await shownKey(page), data.aliceKey.password);
			assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Din återställningsnyckel/);
			assert.match(await page.locator('#timeout-text').getAttribute('data-template'), /Du loggas ut om %s sekunder/);
			assert.deepEqual(await englishLeftovers(page), [], 'no English on the Swedish key page');
			await shot(page, name, 'phone 7 key sv');
			await page.setViewportSize(DESKTOP);
			await shot(page, name, 'desktop 7 key sv');

			// The switch: "English" turns the page into English ...
			const link = page.locator('nav.lang').getByRole('link', { name: 'English' });
			assert.equal(await link.getAttribute('hreflang'), 'en');
			await Promise.all([page.waitForNavigation(), link.click()]);
			assert.equal(await page.locator('html').getAttribute('lang'), 'en');
			assert.equal(new URL(page.url()).pathname, '/recover', 'the same page, in English');
			assert.equal(await page.locator('form[action="/recover"] button[type=submit]').innerText(), 'Get key');
			assert.ok((await page.locator('footer').innerText()).includes(HELPDESK_EN));
			assert.equal(await page.locator('nav.lang [aria-current]').innerText(), 'English');
			await shot(page, name, 'desktop 8 switched to english');

			// ... and the choice sticks on the next pages, although the
			// browser still asks for Swedish.
			const next = await page.goto(server.url + '/recover');
			assert.match(await next.request().headerValue('accept-language') ?? '', /^sv-SE/);
			assert.equal(await page.locator('html').getAttribute('lang'), 'en');
			assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Get your BitLocker recovery key');
			await requestKey(page, data.aliceKey.id.slice(0, 8));
			assert.equal(await page.locator('html').getAttribute('lang'), 'en');
			assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Your BitLocker recovery key');
			// Also after signing out.
			await submit(page, '/logout', () =>
				page.locator('header').getByRole('button', { name: 'Sign out' }).click());
			assert.equal(new URL(page.url()).pathname, '/login');
			assert.equal(await page.locator('html').getAttribute('lang'), 'en');
			assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Sign in');

			// And back to Swedish with "Svenska".
			await Promise.all([page.waitForNavigation(),
				page.locator('nav.lang').getByRole('link', { name: 'Svenska' }).click()]);
			assert.equal(await page.locator('html').getAttribute('lang'), 'sv');
			await page.goto(server.url + '/login');
			assert.equal(await page.locator('html').getAttribute('lang'), 'sv');
		} finally {
			await context.close();
		}
	});

	test('5b. English for an English browser, and the expiry page in Swedish', async () => {
		const context = await newContext(browser, { locale: 'en-GB' });
		const page = await context.newPage();
		try {
			await page.goto(server.url + '/login');
			assert.equal(await page.locator('html').getAttribute('lang'), 'en');
			assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Sign in');
			await page.goto(server.url + '/session/expired?lang=sv');
			assert.equal(await page.locator('html').getAttribute('lang'), 'sv');
			assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Din session har upphört');
			assert.equal(await page.getByRole('link', { name: 'Logga in igen' }).getAttribute('href'), '/login');
			await shot(page, '05b-expired-sv', 'phone expired sv');
		} finally {
			await context.close();
		}
	});
});
