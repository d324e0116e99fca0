// The session timeout (SPEC §3.7): the countdown dialog, Continue, the move
// to /session/expired with the key gone, and the server's own enforcement of
// session_idle_timeout and session_max_lifetime.
//
// Timing: idle timeout 10 s, warning 6 s. The server keeps time in whole
// seconds, so a session may end up to a second before the page's deadline;
// the checks below leave margins of 2 s or more and poll rather than sleep.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
	DESKTOP, Server, acceptNotice, launchBrowser, newContext, requestKey, seedStandard,
	shot, shownKey, signIn, sleep, waitFor,
} from './harness.mjs';

const IDLE = 10, WARNING = 6;

let server, data, browser;

before(async () => {
	server = new Server({ session_idle_timeout: `${IDLE}s`, session_warning: `${WARNING}s` });
	await server.start();
	data = await seedStandard(server);
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close().catch(() => {});
	await server?.stop();
});

/** The number of seconds the dialog shows, or null when it shows none. */
async function secondsShown(page) {
	const text = await page.locator('#timeout-text').innerText();
	const m = /(\d+)/.exec(text);
	return m ? Number(m[1]) : null;
}

async function sessionCookie(context) {
	const c = (await context.cookies(server.url)).find((x) => /^(__Host-)?keywarden$/.test(x.name));
	assert.ok(c, 'a session cookie is set');
	return `${c.name}=${c.value}`;
}

/** GET path with only the given cookie; returns [status, Location]. */
async function getWithCookie(pathname, cookie) {
	const r = await fetch(server.url + pathname, { headers: { Cookie: cookie }, redirect: 'manual' });
	await r.arrayBuffer();
	return [r.status, r.headers.get('location')];
}

/** Signs alice in and shows her key; returns the time the key page arrived. */
async function aliceKeyPage(page) {
	await page.goto(server.url + '/login');
	await signIn(page, server, data.people.alice);
	await acceptNotice(page);
	const resp = await requestKey(page, data.aliceKey.id.slice(0, 8));
	const at = Date.now();
	assert.equal(resp.status(), 200);
	assert.equal(await shownKey(page), data.aliceKey.password);
	return at;
}

/** Records the moment #keybox leaves the DOM, and the page's address then. */
async function watchKeyRemoval(context) {
	const removals = [];
	await context.exposeBinding('__kwKeyboxRemoved', (_src, info) => removals.push(info));
	await context.addInitScript(() => {
		new MutationObserver((records) => {
			for (const r of records)
				for (const n of r.removedNodes)
					if (n.nodeType === 1 && (n.id === 'keybox' || n.querySelector?.('#keybox')))
						window.__kwKeyboxRemoved({ path: location.pathname, at: Date.now() });
		}).observe(document, { childList: true, subtree: true });
	});
	return removals;
}

describe('session timeout', () => {
	test('4. countdown, Continue keeps the session, expiry removes the key', async () => {
		const name = '04-countdown';
		const context = await newContext(browser);
		const removals = await watchKeyRemoval(context);
		const page = await context.newPage();
		const dialog = page.locator('#timeout');
		try {
			// -- the dialog appears with ≤ 6 s left and counts down --
			const t0 = await aliceKeyPage(page);
			assert.equal(await page.locator('body').getAttribute('data-warning'), String(WARNING));
			const remaining = Number(await page.locator('body').getAttribute('data-remaining'));
			assert.ok(remaining > WARNING && remaining <= IDLE, `data-remaining ${remaining}`);
			assert.ok(await dialog.isHidden(), 'the dialog is hidden at first');
			await shot(page, name, 'phone 1 key, no dialog');

			await waitFor(() => dialog.isVisible(), { timeoutMs: (IDLE + 2) * 1000, what: 'the countdown dialog' });
			const appeared = Date.now() - t0;
			assert.ok(appeared >= (IDLE - WARNING - 1) * 1000,
				`the dialog appeared after ${appeared} ms, not before ≤ ${WARNING} s were left`);
			const n1 = await secondsShown(page);
			assert.ok(n1 !== null && n1 >= 1 && n1 <= WARNING, `shows ${n1} seconds`);
			assert.equal(await page.locator('#timeout [role=alertdialog]').count(), 1);
			assert.match(await page.locator('#timeout-title').innerText(), /about to expire/);
			assert.equal(await page.evaluate(() => document.activeElement.id), 'keepalive-button',
				'focus moves to Continue');
			await shot(page, name, 'phone 2 dialog', { fullPage: false });
			await sleep(1100);
			const n2 = await secondsShown(page);
			assert.ok(n2 !== null && n2 < n1, `the number goes down (${n1} then ${n2})`);
			await page.setViewportSize(DESKTOP);
			await shot(page, name, 'desktop 2 dialog', { fullPage: false });
			await page.setViewportSize({ width: 390, height: 844 });

			// -- Continue hides it and keeps the session alive --
			const [keep] = await Promise.all([
				page.waitForResponse((r) => r.url().endsWith('/session/keepalive')),
				page.getByRole('button', { name: 'Continue' }).click(),
			]);
			assert.equal(keep.status(), 200);
			assert.ok((await keep.json()).remaining > WARNING, 'keepalive grants a fresh idle period');
			await waitFor(() => dialog.isHidden(), { timeoutMs: 3000, what: 'the dialog to close' });
			assert.ok(await page.locator('#keybox').isVisible(), 'the key is still shown');
			await shot(page, name, 'phone 3 after continue');

			// Past the original expiry (t0 + 10 s, + 1 s for whole seconds) ...
			const past = t0 + (IDLE + 1.2) * 1000;
			while (Date.now() < past) {
				assert.equal(new URL(page.url()).pathname, '/recover', 'still on the key page');
				await sleep(200);
			}
			assert.equal(removals.length, 0, 'the key was not removed');
			// ... the session still works: /recover is not redirected.
			const again = await page.goto(server.url + '/recover');
			assert.equal(new URL(page.url()).pathname, '/recover', 'not sent to sign-in or expiry');
			assert.equal(again.status(), 200);
			assert.equal(again.request().redirectedFrom(), null, 'no redirect');

			// -- without Continue: expiry --
			const logouts = [];
			page.on('request', (r) => {
				if (r.method() === 'POST' && new URL(r.url()).pathname === '/logout')
					logouts.push(r.postData() ?? '');
			});
			await requestKey(page, data.aliceKey.id.slice(0, 8));
			const t1 = Date.now();
			assert.equal(await shownKey(page), data.aliceKey.password);
			const cookie = await sessionCookie(context);
			const csrf = await page.locator('input[name=csrf_token]').first().inputValue();
			await waitFor(() => dialog.isVisible(), { timeoutMs: (IDLE + 2) * 1000, what: 'the dialog again' });
			await page.waitForURL(/\/session\/expired$/, { timeout: (IDLE + 5) * 1000 });
			const expiredAfter = Date.now() - t1;
			assert.ok(expiredAfter >= (IDLE - 1.5) * 1000, `expired after ${expiredAfter} ms, not early`);
			await page.waitForLoadState('domcontentloaded');
			await assert.doesNotReject(page.getByRole('heading', { name: 'Your session has expired' }).waitFor());
			assert.equal(await page.locator('#keybox').count(), 0);
			assert.ok(!(await page.content()).includes(data.aliceKey.password.slice(0, 13)));
			await shot(page, name, 'phone 4 expired');

			// The page ended the session by a POST with its token (a GET of
			// the expiry page changes nothing on the server).
			assert.equal(logouts.length, 1, 'one POST /logout at expiry');
			assert.ok(logouts[0].includes('csrf_token='), 'with the CSRF token');

			// The key left the DOM while the page was still the key page.
			assert.equal(removals.length, 1, `the key was removed once: ${JSON.stringify(removals)}`);
			assert.equal(removals[0].path, '/recover', 'removed before the navigation');

			// Back does not bring the key back.
			await page.goBack().catch(() => {});
			await page.waitForLoadState('domcontentloaded');
			const back = await page.content();
			assert.ok(!back.includes(data.aliceKey.password.slice(0, 13)), 'going back shows no key');
			assert.equal(await page.locator('#keybox').count(), 0);
			assert.match(new URL(page.url()).pathname, /^\/(login|session\/expired)$/,
				`going back lands on ${page.url()}`);
			await shot(page, name, 'phone 5 after back');

			// The old cookie is worthless now.
			const [status, location] = await getWithCookie('/recover', cookie);
			assert.equal(status, 303);
			assert.match(location ?? '', /\/(session\/expired|login)$/);
			const post = await fetch(server.url + '/recover', {
				method: 'POST', redirect: 'manual',
				headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
				body: new URLSearchParams({ csrf_token: csrf, key_id: data.aliceKey.id, reason: 'lost_pin' }),
			});
			const postBody = await post.text();
			assert.notEqual(post.status, 200);
			assert.ok(!postBody.includes(data.aliceKey.password.slice(0, 13)), 'no key for the old cookie');
		} finally {
			await context.close();
		}
	});

	test('4b. the server ends an idle session on its own (no JavaScript in the browser)', {
	}, async () => {
		const name = '04b-server-idle';
		const context = await newContext(browser, { javaScriptEnabled: false });
		const page = await context.newPage();
		try {
			const t0 = await aliceKeyPage(page);
			const cookie = await sessionCookie(context);
			const csrf = await page.locator('input[name=csrf_token]').first().inputValue();
			// Nothing happens in the page without JavaScript; the key stays.
			while (Date.now() < t0 + (IDLE + 1.5) * 1000) {
				assert.ok(await page.locator('#keybox').isVisible());
				await sleep(500);
			}
			await shot(page, name, 'phone 1 key still on screen without js');
			// The session is over on the server.
			const post = await fetch(server.url + '/recover', {
				method: 'POST', redirect: 'manual',
				headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
				body: new URLSearchParams({ csrf_token: csrf, key_id: data.aliceKey.id, reason: 'lost_pin' }),
			});
			const body = await post.text();
			assert.equal(post.status, 303, 'POST /recover with the idle session is redirected');
			assert.match(post.headers.get('location') ?? '', /\/(session\/expired|login)$/);
			assert.ok(!body.includes(data.aliceKey.password.slice(0, 13)));
			const resp = await page.goto(server.url + '/recover');
			assert.match(new URL(page.url()).pathname, /^\/(session\/expired|login)$/);
			assert.equal(resp.status(), 200);
			await shot(page, name, 'phone 2 next page');
		} finally {
			await context.close();
		}
	});

	test('4c. "Continue" pressed while the dialog still shows a second left keeps the session', {
	}, async () => {
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			await page.goto(server.url + '/login');
			await signIn(page, server, data.people.alice);
			await acceptNotice(page);
			await page.locator('#key_id').fill(data.aliceKey.id.slice(0, 8));
			await page.getByLabel('Lost PIN/passphrase').check();
			// Send the request late in a wall-clock second.
			await waitFor(() => Date.now() % 1000 >= 880 && Date.now() % 1000 < 940,
				{ intervalMs: 5, what: 'the end of a second' });
			await Promise.all([
				page.waitForNavigation({ waitUntil: 'domcontentloaded' }),
				page.getByRole('button', { name: 'Get key' }).click(),
			]);
			await waitFor(async () => (await page.locator('#timeout').isVisible()) &&
				(await secondsShown(page)) === 1, { timeoutMs: (IDLE + 3) * 1000, intervalMs: 20, what: '"1 seconds"' });
			await sleep(300);
			assert.equal(await secondsShown(page), 1, 'the dialog still shows time left');
			const [keep] = await Promise.all([
				page.waitForResponse((r) => r.url().endsWith('/session/keepalive')),
				page.getByRole('button', { name: 'Continue' }).click(),
			]);
			assert.equal(keep.status(), 200, 'the keepalive is accepted');
			await sleep(500);
			assert.equal(new URL(page.url()).pathname, '/recover', 'still signed in');
		} finally {
			await context.close();
		}
	});

	test('4d. the countdown says "1 second", not "1 seconds"', {
	}, async () => {
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			await aliceKeyPage(page);
			await waitFor(async () => (await secondsShown(page)) === 1,
				{ timeoutMs: (IDLE + 3) * 1000, intervalMs: 50, what: 'the count to reach 1' });
			await shot(page, '04d-countdown-plural', 'phone one second left', { fullPage: false });
			assert.doesNotMatch(await page.locator('#timeout-text').innerText(), /\b1 seconds\b/);
		} finally {
			await context.close();
		}
	});

	test('4f. keyboard focus stays in the modal countdown dialog', {
	}, async () => {
		const context = await newContext(browser, { viewport: DESKTOP });
		const page = await context.newPage();
		try {
			await aliceKeyPage(page);
			await waitFor(() => page.locator('#timeout').isVisible(),
				{ timeoutMs: (IDLE + 2) * 1000, what: 'the dialog' });
			assert.equal(await page.evaluate(() => document.activeElement.id), 'keepalive-button');
			for (let i = 0; i < 3; i++) {
				await page.keyboard.press('Tab');
				const where = await page.evaluate(() => {
					const el = document.activeElement;
					return { inside: !!el.closest('#timeout'), body: el === document.body,
						what: `${el.tagName} ${el.id} ${(el.innerText || '').trim().slice(0, 30)}` };
				});
				if (i === 0)
					await shot(page, '04f-dialog-focus', 'desktop after tab', { fullPage: false });
				assert.ok(where.inside || where.body, `focus went behind the dialog to ${where.what}`);
			}
		} finally {
			await context.close();
		}
	});
});

describe('session maximum lifetime', () => {
	let server2;

	before(async () => {
		server2 = new Server({
			session_idle_timeout: `${IDLE}s`, session_warning: `${WARNING}s`,
			session_max_lifetime: '16s',
		});
		await server2.start();
		server2.addUser('CORP\\alice', data.people.alice.password);
	});

	after(async () => {
		await server2?.stop();
	});

	test('4e. the server ends a session at session_max_lifetime however active it is', async () => {
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			await page.goto(server2.url + '/login');
			const t0 = Date.now();          // the session starts after this
			await signIn(page, server2, data.people.alice);
			const t1 = Date.now();          // ... and before this
			assert.equal(new URL(page.url()).pathname, '/notice');
			const csrf = await page.locator('input[name=csrf_token]').first().inputValue();
			const remainings = [];
			// Leave the page (its countdown would end the session at the idle
			// timeout) and keep the session busy: a keepalive every 3 s, the
			// last one well before the lifetime (16 s, in whole seconds) ends.
			await page.goto('about:blank');
			while (Date.now() + 3000 <= t0 + 13000) {
				await sleep(3000);
				const r = await page.request.post(server2.url + '/session/keepalive',
					{ form: { csrf_token: csrf }, headers: { Accept: 'application/json' } });
				assert.equal(r.status(), 200, 'the session is alive while within its lifetime');
				remainings.push((await r.json()).remaining);
			}
			assert.ok(remainings.length >= 3);
			assert.ok(remainings.at(-1) < IDLE,
				`keepalive tells how long is left of the lifetime, not a fresh idle period (${remainings})`);
			// A page loaded 11.5 s in (≤ 6 s of the lifetime left, whole
			// seconds included) shows the dialog at once.
			await waitFor(() => Date.now() > t0 + 11500, { timeoutMs: 5000, what: '11.5 s' });
			await page.goto(server2.url + '/notice');
			assert.ok(Number(await page.locator('body').getAttribute('data-remaining')) <= WARNING);
			await waitFor(() => page.locator('#timeout').isVisible(), { timeoutMs: 3000, what: 'the dialog' });
			await shot(page, '04e-max-lifetime', 'phone dialog near max lifetime', { fullPage: false });
			// Leave before the page's own countdown ends the session: the
			// server alone must end it.
			await page.goto('about:blank');
			await waitFor(() => Date.now() > t1 + 17500, { timeoutMs: 10000, what: 'the lifetime to pass' });
			const r = await page.request.post(server2.url + '/session/keepalive',
				{ form: { csrf_token: csrf }, headers: { Accept: 'application/json' } });
			assert.equal(r.status(), 401, 'keepalive after the lifetime is refused');
			const g = await page.request.get(server2.url + '/recover', { maxRedirects: 0 });
			assert.equal(g.status(), 303);
			assert.match(g.headers().location ?? '', /\/(session\/expired|login)$/);
			const resp = await page.goto(server2.url + '/recover');
			assert.match(new URL(page.url()).pathname, /^\/(session\/expired|login)$/);
			assert.equal(resp.status(), 200);
		} finally {
			await context.close();
		}
	});
});
