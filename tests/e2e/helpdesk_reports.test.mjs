// The help desk's reports in a real browser (issue 10 points 4 and 5): a
// `reports` user filters and pages the recovery audit report, at a desktop
// and a phone width; the compliance and unrotated reports render; no
// recovery password shows anywhere.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
	DESKTOP, PHONE, Server, acceptNotice, launchBrowser, newContext, requestKey, seedStandard,
	shot, signIn, submit,
} from './harness.mjs';

let server, data, browser;
const reader = { account: 'CORP\\rita', login: 'rita', password: 'Rita-Reports-2026!' };
const EXPORTS = 55;   // records of source "cli": more than a page of 50

before(async () => {
	server = new Server();
	await server.start();
	data = await seedStandard(server);
	server.cli(['user', 'add', reader.account, '--role', 'reports', '--password-stdin'],
		reader.password + '\n');
	for (let i = 0; i < EXPORTS; i++)
		server.cli(['export', 'csv']);
	browser = await launchBrowser();
	// alice recovers her key: a disclosure in the report (and a key not rotated)
	const context = await newContext(browser);
	const page = await context.newPage();
	await page.goto(server.url + '/login');
	await signIn(page, server, data.people.alice);
	await acceptNotice(page);
	const r = await requestKey(page, data.aliceKey.id.slice(0, 8));
	assert.equal(r.status(), 200);
	await context.close();
});

after(async () => {
	await browser?.close().catch(() => {});
	await server?.stop();
});

async function readerAt(viewport, pathname) {
	const context = await newContext(browser, { viewport });
	const page = await context.newPage();
	await page.goto(server.url + '/login');
	await signIn(page, server, reader);
	await acceptNotice(page);
	await page.goto(server.url + pathname);
	return { context, page };
}

/** The text of every body row's cells of the page's report table. */
async function rows(page) {
	return page.locator('table.report-audit tbody tr').evaluateAll((trs) =>
		trs.map((tr) => [...tr.cells].map((c) => c.innerText.trim())));
}

async function noPasswords(page) {
	const html = await page.content();
	for (const k of [data.aliceKey, data.bobKey, ...data.twinKeys, data.remoteKey])
		assert.ok(!html.includes(k.password), 'no recovery password on the page');
}

describe('help-desk reports', () => {
	for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
		test(`audit report: filters and pages (${label})`, async () => {
			const name = `hd-reports-audit-${label}`;
			const { context, page } = await readerAt(viewport, '/helpdesk/reports/audit');
			try {
				assert.equal(await page.locator('h1').innerText(), 'Recovery audit report');
				const heads = await page.locator('table.report-audit thead th').allInnerTexts();
				assert.deepEqual(heads.map((h) => h.trim()), ['Time (UTC)', 'Source', 'Result',
					'Help-desk user', 'End user', 'Computer', 'Key ID', 'Key type', 'Reason',
					'Client address']);
				// every form field has its label
				for (const l of ['From (date)', 'To (date)', 'Result', 'Source',
					'User (help desk or end user)', 'Computer'])
					await page.getByLabel(l, { exact: true }).waitFor();
				let got = await rows(page);
				assert.equal(got.length, 50, 'a page of 50');
				assert.equal(got[0][2], 'Disclosed', 'newest first: alice\'s recovery');
				assert.equal(got[0][4], 'CORP\\alice');
				assert.equal(got[0][5], 'PC-ALICE-0042');
				await noPasswords(page);
				// the page fits the width; the table scrolls in its own box
				const overflow = await page.evaluate(() =>
					document.documentElement.scrollWidth - document.documentElement.clientWidth);
				assert.ok(overflow <= 0, `no sideways scrolling of the page (${overflow}px)`);
				await shot(page, name, '1 first page');

				// older, then newer again
				await Promise.all([page.waitForNavigation(),
					page.getByRole('link', { name: 'Older' }).click()]);
				got = await rows(page);
				assert.equal(got.length, EXPORTS + 1 - 50);
				assert.ok(got.every((r) => r[1] === 'Command line'));
				assert.equal(await page.getByRole('link', { name: 'Older' }).count(), 0);
				await shot(page, name, '2 older page');
				await Promise.all([page.waitForNavigation(),
					page.getByRole('link', { name: 'Newer' }).click()]);
				assert.equal((await rows(page))[0][2], 'Disclosed');

				// filter: alice's records only, through the form
				await page.getByLabel('User (help desk or end user)').fill('corp\\ALICE');
				await page.getByLabel('Result').selectOption('disclosed');
				await Promise.all([page.waitForNavigation(),
					page.getByRole('button', { name: 'Show' }).click()]);
				assert.match(page.url(), /user=corp%5CALICE/);
				got = await rows(page);
				assert.deepEqual(got.map((r) => [r[1], r[2], r[4], r[6]]),
					[['Self-service', 'Disclosed', 'CORP\\alice', data.aliceKey.id]]);
				assert.equal(await page.getByLabel('User (help desk or end user)').inputValue(),
					'corp\\ALICE', 'the filter stays in the form');
				assert.equal(await page.getByRole('link', { name: 'Older' }).count(), 0);
				const csv = await page.getByRole('link', { name: 'Download as CSV' })
					.getAttribute('href');
				assert.match(csv, /result=disclosed&user=corp%5CALICE&format=csv$/);
				await shot(page, name, '3 filtered by user and result');

				// a bad date range is told in an alert
				await page.getByLabel('From (date)').fill('2026-12-01');
				await page.getByLabel('To (date)').fill('2026-11-01');
				await Promise.all([page.waitForNavigation(),
					page.getByRole('button', { name: 'Show' }).click()]);
				assert.match(await page.getByRole('alert').innerText(), /end date is before/);
				await shot(page, name, '4 bad dates');
			} finally {
				await context.close();
			}
		});
	}

	test('compliance and unrotated reports (desktop and phone)', async () => {
		for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
			const { context, page } = await readerAt(viewport, '/helpdesk/reports/compliance');
			try {
				assert.equal(await page.locator('h1').innerText(), 'Compliance report');
				const all = await page.locator('table.summary tbody tr:last-child td')
					.allInnerTexts();
				assert.equal(all[0], '4');
				await shot(page, `hd-reports-compliance-${label}`, '1 compliance');
				await page.getByRole('link', { name: 'Keys not rotated' }).click();
				await page.waitForURL('**/helpdesk/reports/unrotated');
				const text = await page.locator('main').innerText();
				assert.ok(text.includes(data.aliceKey.id), 'alice\'s disclosed key is listed');
				await noPasswords(page);
				await shot(page, `hd-reports-unrotated-${label}`, '1 unrotated');
			} finally {
				await context.close();
			}
		}
	});
});
