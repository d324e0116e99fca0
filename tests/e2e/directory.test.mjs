// Directory sign-in in a real browser (SPEC §8): a directory user (a real
// slapd, started by tests/integration/slapd.py) signs in with their UPN and
// gets the key of the computer they signed in to; while the directory hangs
// (SIGSTOP) the sign-in page says the directory is not answering.
// Skipped when Debian's slapd is not installed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
	Server, acceptNotice, hexPrefix, keyId, launchBrowser, newContext, recoveryPassword,
	requestKey, shot, shownKey, signIn,
} from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SLAPD_PY = path.join(HERE, '..', 'integration', 'slapd.py');
const HAVE_SLAPD = fs.existsSync('/usr/sbin/slapd') && fs.existsSync('/usr/bin/ldapadd');

const alice = { login: 'alice@corp.example.com', password: 'Dir-Alice-Secret-2026!' };

let directory, dirInfo, server, browser, key, pc;

/** Starts slapd.py; resolves with the JSON line it prints. */
function startDirectory(args) {
	const proc = spawn('/usr/bin/python3', [SLAPD_PY, ...args],
		{ stdio: ['pipe', 'pipe', 'inherit'] });
	const lines = readline.createInterface({ input: proc.stdout });
	return new Promise((resolve, reject) => {
		proc.on('exit', (code) => reject(new Error(`slapd.py exited (${code})`)));
		lines.once('line', (line) => resolve({ proc, info: JSON.parse(line) }));
	});
}

describe('directory sign-in', { skip: !HAVE_SLAPD && 'needs slapd and ldap-utils' }, () => {
	before(async () => {
		({ proc: directory, info: dirInfo } = await startDirectory(
			['--user', `alice:${alice.password}:staff`]));
		server = new Server({}, {
			auth: { backends: 'ldap, local' },
			ldap: {
				uri: dirInfo.uri, base_dn: dirInfo.base_dn, bind_dn: dirInfo.bind_dn,
				bind_password_file: dirInfo.bind_password_file,
				user_filter: '(sAMAccountName=%s)', netbios_domain: 'CORP', timeout: '2s',
			},
		});
		await server.start();
		key = { id: keyId(hexPrefix()), password: recoveryPassword() };
		pc = await server.device({ name: 'PC-DIR-ALICE-7', keys: [key],
			logons: [['CORP\\alice', 'local']] });
		browser = await launchBrowser();
	});

	after(async () => {
		await browser?.close().catch(() => {});
		await server?.stop();
		if (directory) {
			try { process.kill(dirInfo.pid, 'SIGCONT'); } catch { /* gone */ }
			directory.stdin.end();
			await new Promise((resolve) => directory.on('close', resolve));
		}
	});

	test('a directory user signs in and recovers the key of a computer they used', async () => {
		const name = 'directory-sign-in-to-key';
		const context = await newContext(browser);
		const page = await context.newPage();
		try {
			const login = await signIn(page, server, alice, { shotAs: name });
			assert.equal(login.status(), 303, 'POST /login redirects');
			assert.equal(new URL(page.url()).pathname, '/notice');
			assert.match(await page.locator('.signout .user').innerText(), /alice/i);
			await acceptNotice(page);
			const resp = await requestKey(page, key.id.slice(0, 8));
			assert.equal(resp.status(), 200);
			assert.equal(await shownKey(page), key.password);
			assert.ok((await page.locator('main').innerText()).includes(pc.name));
			await shot(page, name, 'key shown');
		} finally {
			await context.close();
		}
	});

	test('a hung directory: the sign-in page says the directory is not answering', async () => {
		const name = 'directory-hung';
		const context = await newContext(browser);
		const page = await context.newPage();
		process.kill(dirInfo.pid, 'SIGSTOP');
		try {
			const login = await signIn(page, server, alice);
			assert.equal(login.status(), 503);
			assert.match(await page.locator('main').innerText(),
				/directory service is not answering/i);
			await shot(page, name, 'directory not answering');
		} finally {
			process.kill(dirInfo.pid, 'SIGCONT');
			await context.close();
		}
	});
});
