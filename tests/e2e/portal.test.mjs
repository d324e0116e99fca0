// Self-service portal in a real browser (SPEC §3, §7): sign-in, notice, key
// lookup, errors, keyboard use, phone layout, no-JavaScript use, and that
// pages load nothing from elsewhere.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
	DESKTOP, HELPDESK_EN, HELPDESK_URL, NOTICE_EN, PHONE, Server,
	acceptNotice, hexPrefix, launchBrowser, newContext, requestKey, seedStandard,
	shot, shownKey, signIn, submit,
} from './harness.mjs';

const PASSWORD_RE = /^(\d{6})(-\d{6}){7}$/;

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

/** Signs alice in and accepts the notice; the page ends on /recover. */
async function aliceAtRecoverForm(page) {
	await page.goto(server.url + '/login');
	await signIn(page, server, data.people.alice);
	await acceptNotice(page);
}

describe('self-service portal', () => {
	test('1. sign in, accept the notice, get the key of her own computer', async () => {
		const name = '01-sign-in-to-key';
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			// Old bookmarks lead to the portal.
			await page.goto(server.url + '/SelfService');
			assert.equal(new URL(page.url()).pathname, '/login', '/SelfService → / → /login');

			// "/" sends a signed-out visitor to the sign-in page.
			const home = await page.goto(server.url + '/');
			assert.equal(new URL(page.url()).pathname, '/login', 'redirected to /login');
			assert.equal(home.status(), 200);
			const chain = [];
			for (let r = home.request(); r; r = r.redirectedFrom())
				chain.unshift(r.url());
			assert.equal(chain[0], server.url + '/');
			await shot(page, name, 'phone 1 sign-in');

			// Sign in typing "alice" (her account is CORP\alice).
			const login = await signIn(page, server, data.people.alice, { shotAs: name });
			assert.equal(login.status(), 303, 'POST /login redirects');
			assert.equal(new URL(page.url()).pathname, '/notice');
			const notice = await page.locator('main').innerText();
			for (const para of NOTICE_EN.trim().split('\n\n'))
				assert.ok(notice.includes(para.trim()), `notice shows "${para.trim()}"`);
			await assert.doesNotReject(page.locator('.signout .user').waitFor());
			assert.match(await page.locator('.signout .user').innerText(), /alice/i);
			await shot(page, name, 'phone 2 notice');

			await acceptNotice(page);
			await shot(page, name, 'phone 3 recovery form');

			// The first 8 characters, in lower case; bob's key shares them.
			const prefix = data.aliceKey.id.slice(0, 8).toLowerCase();
			assert.equal(data.bobKey.id.slice(0, 8).toLowerCase(), prefix);
			await page.locator('#key_id').pressSequentially(prefix);
			await page.getByLabel('Operating system files changed').check();
			await shot(page, name, 'phone 4 recovery form filled');
			const resp = await submit(page, '/recover', () =>
				page.getByRole('button', { name: 'Get key' }).click());
			assert.equal(resp.status(), 200, 'alice gets her key, not a 409 for bob\'s');
			assert.match(resp.headers()['cache-control'] ?? '', /no-store/);

			const keybox = page.locator('#keybox');
			await assert.doesNotReject(keybox.waitFor({ state: 'visible' }));
			const text = await keybox.innerText();
			assert.ok(text.includes(data.alicePc.name), 'shows her computer name');
			assert.ok(!text.includes(data.bobPc.name), 'never bob\'s computer');
			assert.equal((await page.locator('.keyid').innerText()).trim(), data.aliceKey.id,
				'shows the full key ID, canonical');
			const shown = await shownKey(page);
			assert.match(shown, PASSWORD_RE, '48 digits in 8 groups');
			assert.equal(shown, data.aliceKey.password, 'the escrowed password');
			assert.notEqual(shown, data.bobKey.password);
			const body = await page.content();
			assert.ok(!body.includes(data.bobKey.password.slice(0, 13)), 'nothing of bob\'s key');
			// Large monospace digits.
			const style = await page.locator('#key').evaluate((el) => {
				const s = getComputedStyle(el);
				return { size: parseFloat(s.fontSize), family: s.fontFamily };
			});
			assert.ok(style.size >= 24, `key font size ${style.size}px is large`);
			assert.match(style.family, /mono|consol/i);
			await shot(page, name, 'phone 5 key');
			await page.setViewportSize(DESKTOP);
			await shot(page, name, 'desktop 5 key');

			// Bob's full key ID is, for alice, simply not found.
			await page.goto(server.url + '/recover');
			const bobs = await requestKey(page, data.bobKey.id);
			assert.equal(bobs.status(), 404);
			assert.ok(!(await page.content()).includes(data.bobKey.password.slice(0, 13)));
		} finally {
			await context.close();
		}
	});

	test('1b. the copy button copies exactly the key', async () => {
		const context = await newContext(browser, { viewport: DESKTOP });
		await context.grantPermissions(['clipboard-read', 'clipboard-write'],
			{ origin: server.origin });
		const page = await context.newPage();
		try {
			await aliceAtRecoverForm(page);
			assert.equal((await requestKey(page, data.aliceKey.id.slice(0, 8))).status(), 200);
			const copy = page.getByRole('button', { name: 'Copy key' });
			await assert.doesNotReject(copy.waitFor({ state: 'visible' }));
			await copy.click();
			await assert.doesNotReject(page.locator('#copied').getByText('Copied').waitFor());
			const clip = await page.evaluate(() => navigator.clipboard.readText());
			assert.equal(clip, data.aliceKey.password);
			await shot(page, '01b-copy', 'desktop copied');
		} finally {
			await context.close();
		}
	});

	test('2. keyboard: tab order, Enter submits, focus visible, reasons by keys', async () => {
		const name = '02-keyboard';
		const context = await newContext(browser, { viewport: DESKTOP });
		const page = await context.newPage();
		const focused = () => page.evaluate(() => {
			const el = document.activeElement;
			const s = getComputedStyle(el);
			return {
				tag: el.tagName.toLowerCase(), id: el.id, type: el.type, value: el.value,
				text: (el.innerText || '').trim(),
				focusVisible: el.matches(':focus-visible'),
				outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
				ring: s.boxShadow !== 'none',
			};
		});
		const assertVisibleFocus = (f, what) =>
			assert.ok(f.focusVisible && (f.outline || f.ring), `${what} shows a visible focus indicator: ${JSON.stringify(f)}`);
		try {
			await page.goto(server.url + '/login');
			// The user name field has focus on arrival (autofocus) ...
			let f = await focused();
			if (f.id !== 'username') {
				// ... or, if the browser ignored autofocus, is reachable by Tab.
				for (let i = 0; i < 8 && f.id !== 'username'; i++) {
					await page.keyboard.press('Tab');
					f = await focused();
				}
			}
			assert.equal(f.id, 'username');
			await page.keyboard.type(data.people.alice.login);
			await page.keyboard.press('Tab');
			f = await focused();
			assert.equal(f.id, 'password', 'Tab: user name → password');
			assertVisibleFocus(f, 'the password field');
			await page.keyboard.type(data.people.alice.password);
			await page.keyboard.press('Tab');
			f = await focused();
			assert.equal(f.tag, 'button', 'Tab: password → Sign in');
			assert.equal(f.text, 'Sign in');
			assertVisibleFocus(f, 'the Sign in button');
			await shot(page, name, 'desktop 1 focus on sign-in button');
			await page.keyboard.press('Shift+Tab');
			assert.equal((await focused()).id, 'password', 'Shift+Tab goes back');
			// Enter in the password field submits the form.
			await submit(page, '/login', () => page.keyboard.press('Enter'));
			assert.equal(new URL(page.url()).pathname, '/notice');

			// The notice can be accepted with the keyboard.
			for (let i = 0; i < 12 && (await focused()).text !== 'I accept'; i++)
				await page.keyboard.press('Tab');
			f = await focused();
			assert.equal(f.text, 'I accept', 'the accept button is reachable by Tab');
			assertVisibleFocus(f, 'the accept button');
			await submit(page, '/notice', () => page.keyboard.press('Enter'));
			assert.equal(new URL(page.url()).pathname, '/recover');

			// The recovery form: key ID (autofocus), then the reasons.
			f = await focused();
			if (f.id !== 'key_id') {
				for (let i = 0; i < 12 && f.id !== 'key_id'; i++) {
					await page.keyboard.press('Tab');
					f = await focused();
				}
			}
			assert.equal(f.id, 'key_id');
			await page.keyboard.type(data.aliceKey.id.slice(0, 8));
			await page.keyboard.press('Tab');
			f = await focused();
			assert.equal(f.type, 'radio', 'Tab: key ID → the reason group');
			assertVisibleFocus(f, 'a reason radio button');
			await page.keyboard.press('Space');
			assert.equal(await page.locator('input[name=reason]:checked').getAttribute('value'),
				f.value, 'Space selects the focused reason');
			await page.keyboard.press('ArrowDown');
			f = await focused();
			assert.equal(await page.locator('input[name=reason]:checked').getAttribute('value'),
				f.value, 'arrow keys move the choice');
			assert.equal(f.value, 'os_files_changed');
			await page.keyboard.press('ArrowDown');
			assert.equal(await page.locator('input[name=reason]:checked').getAttribute('value'),
				'lost_pin');
			await shot(page, name, 'desktop 2 reason chosen by keyboard');
			await page.keyboard.press('Tab');
			f = await focused();
			assert.equal(f.text, 'Get key', 'Tab: reasons → Get key (one stop for the group)');
			assertVisibleFocus(f, 'the Get key button');
			const resp = await submit(page, '/recover', () => page.keyboard.press('Enter'));
			assert.equal(resp.status(), 200);
			assert.equal(await shownKey(page), data.aliceKey.password);

			// On the key page (nothing has focus) the skip link is the first stop
			// and shows itself when focused.
			await page.keyboard.press('Tab');
			f = await focused();
			assert.equal(f.text, 'Skip to content', 'the first Tab stop is the skip link');
			assertVisibleFocus(f, 'the skip link');
			const box = await page.locator('a.skip').boundingBox();
			assert.ok(box && box.x >= 0 && box.y >= 0, 'the skip link is on screen when focused');
			await shot(page, name, 'desktop 3 skip link focused');
		} finally {
			await context.close();
		}
	});

	test('3. phone layout: no sideways scrolling', async () => {
		const name = '03-phone-layout';
		for (const viewport of [PHONE, { width: 320, height: 640 }]) {
			const context = await newContext(browser, { viewport });
			const page = await context.newPage();
			const w = viewport.width;
			const check = async (what) => {
				await shot(page, name, `${w} ${what}`);
				const dims = await page.evaluate(() =>
					[document.scrollingElement.scrollWidth, window.innerWidth]);
				assert.ok(dims[0] <= dims[1],
					`${what} at ${w} px wide scrolls sideways (scrollWidth ${dims[0]} > innerWidth ${dims[1]})`);
			};
			try {
				await page.goto(server.url + '/login');
				await check('sign-in');
				await signIn(page, server, data.people.alice);
				await check('notice');
				await acceptNotice(page);
				await check('recovery form');
				assert.equal((await requestKey(page, 'zz')).status(), 422);
				await check('recovery form with error');
				assert.equal((await requestKey(page, data.twinKeys[0].id.slice(0, 8))).status(), 409);
				await check('recovery form ambiguous');
				assert.equal((await requestKey(page, data.aliceKey.id.slice(0, 8))).status(), 200);
				await check('key');
				// The 8 groups are not cut off: each is fully inside the viewport.
				const boxes = await page.locator('#key > span:not(.sep)').evaluateAll((els) =>
					els.map((e) => { const r = e.getBoundingClientRect(); return [r.left, r.right]; }));
				assert.equal(boxes.length, 8);
				for (const [l, r] of boxes)
					assert.ok(l >= 0 && r <= w, `a key group at ${l}..${r} fits ${w} px`);
				// Tap targets: buttons at least 44 px high (WCAG 2.5.5 advice).
				const sizes = await page.locator('main button:visible').evaluateAll((els) =>
					els.map((e) => e.getBoundingClientRect().height));
				for (const h of sizes)
					assert.ok(h >= 44, `button height ${h} ≥ 44`);
			} finally {
				await context.close();
			}
		}
	});

	test('3b. between phone and desktop widths the key fits its card and the page', {
	}, async () => {
		const context = await newContext(browser, { viewport: { width: 600, height: 900 } });
		const page = await context.newPage();
		try {
			await aliceAtRecoverForm(page);
			assert.equal((await requestKey(page, data.aliceKey.id.slice(0, 8))).status(), 200);
			const problems = [];
			for (const width of [576, 600, 620, 640, 660, 700, 844]) {
				await page.setViewportSize({ width, height: 900 });
				const m = await page.evaluate(() => {
					const card = document.getElementById('keybox').getBoundingClientRect();
					const right = Math.max(...[...document.querySelectorAll('#key > span:not(.sep)')]
						.map((e) => e.getBoundingClientRect().right));
					return { sw: document.scrollingElement.scrollWidth, iw: innerWidth, card: card.right, right };
				});
				if (m.sw > m.iw)
					problems.push(`${width} px: the page scrolls sideways (${m.sw} > ${m.iw})`);
				if (m.right > m.card)
					problems.push(`${width} px: the key ends at ${m.right}, past its card (${m.card})`);
				if (width === 600)
					await shot(page, '03b-in-between', '600 key');
			}
			assert.deepEqual(problems, []);
		} finally {
			await context.close();
		}
	});

	test('3c. the page heading has room below the header', {
	}, async () => {
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			await page.goto(server.url + '/login');
			const gap = await page.evaluate(() =>
				document.querySelector('main h1').getBoundingClientRect().top -
				document.querySelector('header').getBoundingClientRect().bottom);
			assert.ok(gap >= 12, `the sign-in heading is ${gap} px below the header`);
		} finally {
			await context.close();
		}
	});

	test('3d. reason radio buttons keep their size when a label wraps (320 px)', {
	}, async () => {
		const context = await newContext(browser, { viewport: { width: 320, height: 640 } });
		const page = await context.newPage();
		try {
			await aliceAtRecoverForm(page);
			const sizes = await page.locator('input[name=reason]').evaluateAll((els) =>
				els.map((e) => { const r = e.getBoundingClientRect(); return `${e.value} ${r.width}x${r.height}`; }));
			await shot(page, '03d-radio-320', 'recovery form');
			for (const sz of sizes)
				assert.match(sz, / 20x20$/, `radio ${sz}`);
		} finally {
			await context.close();
		}
	});

	test('6. error outcomes as a person sees them', async () => {
		const name = '06-errors';
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			await aliceAtRecoverForm(page);

			// 7 characters: a field error next to the field.
			let resp = await requestKey(page, data.aliceKey.id.slice(0, 7));
			assert.equal(resp.status(), 422);
			const input = page.locator('#key_id');
			assert.equal(await input.getAttribute('aria-invalid'), 'true');
			const err = page.locator('#key_id-error');
			await assert.doesNotReject(err.waitFor({ state: 'visible' }));
			assert.match(await err.innerText(), /8/, 'the error says how many characters');
			assert.ok((await input.getAttribute('aria-describedby')).split(/\s+/).includes('key_id-error'),
				'the input is described by its error');
			assert.equal(await err.evaluate((e) => e.closest('.field') === document.getElementById('key_id').closest('.field')),
				true, 'the error sits in the field\'s own group');
			const [eb, ib] = [await err.boundingBox(), await input.boundingBox()];
			assert.ok(Math.abs(eb.y - ib.y) < 120, 'the error is right next to the field');
			assert.equal(await input.inputValue(), data.aliceKey.id.slice(0, 7), 'what was typed is kept');
			assert.equal(await page.locator('input[name=reason]:checked').getAttribute('value'),
				'bios_tpm_changed', 'the chosen reason is kept');
			await shot(page, name, 'phone 1 seven characters');

			// No reason chosen.
			await page.locator('input[name=reason]:checked').evaluate((e) => { e.checked = false; });
			resp = await requestKey(page, data.aliceKey.id.slice(0, 8), null);
			assert.equal(resp.status(), 422);
			await assert.doesNotReject(page.locator('#reason-error').waitFor({ state: 'visible' }));
			assert.match(await page.locator('#reason-error').innerText(), /reason/i);
			assert.equal(await page.locator('#key_id').getAttribute('aria-invalid'), null,
				'the key ID field is not marked invalid when only the reason is missing');
			await shot(page, name, 'phone 2 no reason');

			// An unknown ID.
			resp = await requestKey(page, hexPrefix().toLowerCase());
			assert.equal(resp.status(), 404);
			const alert = page.getByRole('alert');
			await assert.doesNotReject(alert.waitFor());
			const alertText = await alert.innerText();
			assert.match(alertText, /No recovery key was found for this ID among the computers you have signed in to\./);
			const link = alert.getByRole('link', { name: HELPDESK_EN });
			assert.equal(await link.getAttribute('href'), HELPDESK_URL, 'help-desk link');
			await shot(page, name, 'phone 3 not found');

			// A key on a computer she reached only over remote desktop: not hers.
			resp = await requestKey(page, data.remoteKey.id.slice(0, 8));
			assert.equal(resp.status(), 404, 'a remote logon does not entitle');

			// Two of her keys share the prefix.
			resp = await requestKey(page, data.twinKeys[0].id.slice(0, 8).toLowerCase());
			assert.equal(resp.status(), 409);
			// Said at the field that must change, which is marked invalid.
			assert.match(await page.locator('#key_id-error').innerText(),
				/More than one recovery key starts with these characters\. Enter all 32 characters of the recovery key ID\./);
			assert.equal(await page.locator('#key_id').getAttribute('aria-invalid'), 'true');
			assert.equal((await page.locator('#key_id').inputValue()).toLowerCase(),
				data.twinKeys[0].id.slice(0, 8).toLowerCase(), 'the form again, with what was typed');
			await shot(page, name, 'phone 4 ambiguous');
			// ... and the full ID then gives exactly that key.
			resp = await requestKey(page, data.twinKeys[1].id);
			assert.equal(resp.status(), 200);
			assert.equal(await shownKey(page), data.twinKeys[1].password);
			assert.ok((await page.locator('#keybox').innerText()).includes(data.aliceLab.name));
		} finally {
			await context.close();
		}
	});

	test('6b. too many unknown IDs: told how long to wait, with the help-desk text', async () => {
		const name = '06b-rate-limit';
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			// bob, so that alice's tests keep their allowance (5 per 15 min).
			await page.goto(server.url + '/login');
			await signIn(page, server, data.people.bob);
			await acceptNotice(page);
			for (let i = 0; i < 5; i++)
				assert.equal((await requestKey(page, hexPrefix())).status(), 404, `failed lookup ${i + 1}`);
			// The sixth is refused, even for his own key.
			const resp = await requestKey(page, data.bobKey.id.slice(0, 8));
			assert.equal(resp.status(), 429);
			assert.ok(Number(resp.headers()['retry-after']) > 0, 'Retry-After');
			const main = await page.locator('main').innerText();
			assert.match(main, /Try again in \d+ minutes|Try again in a minute/, 'how long to wait');
			assert.ok(!main.includes(data.bobKey.password.slice(0, 13)));
			assert.ok((await page.locator('body').innerText()).includes(HELPDESK_EN), 'the help-desk text');
			await shot(page, name, 'phone 429');
		} finally {
			await context.close();
		}
	});

	test('7. the whole flow works without JavaScript', async () => {
		const name = '07-no-javascript';
		const context = await newContext(browser, { javaScriptEnabled: false });
		const page = await context.newPage();
		try {
			await page.goto(server.url + '/');
			assert.equal(new URL(page.url()).pathname, '/login');
			await signIn(page, server, data.people.alice);
			assert.equal(new URL(page.url()).pathname, '/notice');
			await shot(page, name, 'phone 1 notice');
			await acceptNotice(page);
			const resp = await requestKey(page, data.aliceKey.id.slice(0, 8).toLowerCase(),
				'Lost PIN/passphrase');
			assert.equal(resp.status(), 200);
			assert.equal(await shownKey(page), data.aliceKey.password);
			assert.ok(await page.locator('#timeout').isHidden(), 'no countdown dialog without JS');
			await shot(page, name, 'phone 2 key');
			// Signing out works too.
			await Promise.all([page.waitForURL(/\/login$/),
				page.locator('main').getByRole('button', { name: 'Sign out' }).click()]);
			await page.goto(server.url + '/recover');
			assert.equal(new URL(page.url()).pathname, '/login', 'signed out for real');
		} finally {
			await context.close();
		}
	});

	test('7b. no dead "Copy key" button without JavaScript', {
	}, async () => {
		const context = await newContext(browser, { javaScriptEnabled: false });
		const page = await context.newPage();
		try {
			await aliceAtRecoverForm(page);
			assert.equal((await requestKey(page, data.aliceKey.id.slice(0, 8))).status(), 200);
			await shot(page, '07b-no-javascript-copy', 'phone key');
			assert.equal(await page.locator('#copy').getAttribute('hidden'), '', 'the markup hides it');
			assert.ok(await page.locator('#copy').isHidden(), 'and it is not displayed');
		} finally {
			await context.close();
		}
	});

	test('8. pages load nothing from other hosts; no console errors or CSP violations', async () => {
		const name = '08-same-origin';
		const context = await newContext(browser);
		const violations = [];
		await context.exposeBinding('__kwCsp', (_src, v) => violations.push(v));
		await context.addInitScript(() => {
			document.addEventListener('securitypolicyviolation', (e) => {
				window.__kwCsp(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
			});
		});
		const page = await context.newPage();
		const pages = [];
		page.on('response', (r) => {
			if (r.request().resourceType() === 'document')
				pages.push({ url: r.url(), status: r.status(), headers: r.headers() });
		});
		try {
			await page.goto(server.url + '/');
			await signIn(page, server, data.people.alice);
			await acceptNotice(page);
			await requestKey(page, 'abc');
			await requestKey(page, data.aliceKey.id.slice(0, 8));
			assert.equal(await shownKey(page), data.aliceKey.password);
			await page.waitForLoadState('networkidle');
			// The language switch and the expiry page, for completeness.
			await page.goto(server.url + '/recover?lang=sv');
			await page.goto(server.url + '/recover?lang=en');
			await Promise.all([page.waitForURL(/\/login$/),
				page.locator('header').getByRole('button', { name: 'Sign out' }).click()]);
			await page.goto(server.url + '/session/expired');
			await page.waitForLoadState('networkidle');
			await shot(page, name, 'phone expired page');

			const { requests, console: messages, pageErrors } = context.rec;
			assert.ok(requests.length > 5);
			const foreign = requests.filter((u) => new URL(u).origin !== server.origin);
			assert.deepEqual(foreign, [], 'every request goes to the server\'s own origin');
			assert.ok(requests.some((u) => u.endsWith('/static/portal.css')));
			assert.ok(requests.some((u) => u.endsWith('/static/portal.js')));
			// A page served with 4xx (here the 422 of the invalid key ID, as the
			// spec wants) is logged by Chromium as "Failed to load resource";
			// that is not a fault of the page.
			const intended = new Set(pages.filter((p) => p.status >= 400).map((p) => String(p.status)));
			// The browser's own /favicon.ico request is checked in 8b.
			const errors = messages.filter((m) => (m.type === 'error' || /Content Security Policy/i.test(m.text)) &&
				!(/^Failed to load resource: the server responded with a status of (\d+)/.test(m.text) &&
					intended.has(/status of (\d+)/.exec(m.text)[1])) &&
				!(m.url ?? '').endsWith('/favicon.ico'));
			assert.deepEqual(errors, [], 'no console errors');
			assert.deepEqual(pageErrors, [], 'no uncaught exceptions');
			assert.deepEqual(violations, [], 'no CSP violations');
			const failed = context.rec.responses.filter((r) => r.url.includes('/static/') && r.status !== 200);
			assert.deepEqual(failed, [], 'static assets load');

			for (const p of pages) {
				if (p.status >= 300 && p.status < 400)
					continue;
				assert.match(p.headers['content-security-policy'] ?? '', /default-src 'self'/, `CSP on ${p.url}`);
				assert.doesNotMatch(p.headers['content-security-policy'] ?? '', /unsafe-inline/);
				assert.match(p.headers['content-type'] ?? '', /charset=utf-8/i, `charset on ${p.url}`);
			}
			// Signed-in pages are never cached.
			for (const p of pages.filter((x) => /\/(notice|recover)/.test(x.url)))
				assert.match(p.headers['cache-control'] ?? '', /no-store/, `no-store on ${p.url}`);
		} finally {
			await context.close();
		}
	});

	test('8b. the browser\'s favicon request does not log a 404 error', {
	}, async () => {
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			await page.goto(server.url + '/login');
			const icon = await page.evaluate(() =>
				document.querySelector('link[rel~=icon]')?.getAttribute('href') ?? '/favicon.ico');
			const r = await page.request.get(new URL(icon, server.url).href);
			assert.equal(r.status(), 200, `the icon ${icon} the browser asks for is answered ${r.status()}`);
		} finally {
			await context.close();
		}
	});
});
