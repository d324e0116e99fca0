// Browser-test harness: a real keywarden in a temporary directory on a random
// port, seeded through the CLI and the device API, and Debian's Chromium
// driven by playwright-core.
//
// Environment:
//   KEYWARDEN   the binary (default ../../build/src/keywarden from this file)
//   KW_KEEP     keep the temporary directories (for debugging)
//   KW_HEADED   run Chromium with a window (for debugging)

import { spawn, spawnSync } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const BINARY = path.resolve(HERE, process.env.KEYWARDEN ||
	path.join('..', '..', 'build', 'src', 'keywarden'));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const ADMIN_PASSWORD = 'Admin-Horse-Battery-42';
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 900 };

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

const live = new Set();   // server processes still running

function killAll() {
	for (const p of live) {
		try { p.kill('SIGKILL'); } catch { /* already gone */ }
	}
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
	process.on(sig, () => { killAll(); process.exit(130); });
}

// ---- test data ----------------------------------------------------------------

/** A valid recovery password: 8 groups of 11 * a 16-bit value, 6 digits each. */
export function recoveryPassword() {
	const groups = [];
	for (let i = 0; i < 8; i++)
		groups.push(String(11 * randomInt(0, 65536)).padStart(6, '0'));
	return groups.join('-');
}

/** A recovery key ID (upper-case GUID); `prefix` (8 hex digits) fixes its start. */
export function keyId(prefix) {
	const id = randomUUID().toUpperCase();
	return prefix ? prefix.toUpperCase() + id.slice(8) : id;
}

/** 8 random hex digits that no other test data shares. */
export function hexPrefix() {
	return randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
}

export function sleep(ms) {
	return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls fn() until it returns a truthy value; returns it, or throws after timeoutMs. */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 100, what = 'condition' } = {}) {
	const deadline = Date.now() + timeoutMs;
	let last;
	for (;;) {
		try {
			last = await fn();
			if (last)
				return last;
		} catch (e) {
			last = e;
		}
		if (Date.now() > deadline)
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
		await sleep(intervalMs);
	}
}

// ---- the server ---------------------------------------------------------------

function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

function iniText(settings) {
	let out = '';
	for (const [section, kv] of Object.entries(settings)) {
		out += `[${section}]\n`;
		for (const [k, v] of Object.entries(kv))
			if (v !== undefined && v !== null)
				out += `${k} = ${v}\n`;
		out += '\n';
	}
	return out;
}

function mergeSettings(base, extra) {
	const out = {};
	for (const [s, kv] of Object.entries(base))
		out[s] = { ...kv };
	for (const [s, kv] of Object.entries(extra || {}))
		out[s] = { ...(out[s] || {}), ...kv };
	return out;
}

export const NOTICE_EN = 'Authorised use only. This portal is for employees of Contoso who are locked out of their own computer.\n\nEvery request is recorded.\n';
export const NOTICE_SV = 'Endast behörig användning. Portalen är till för anställda på Contoso som är utelåsta från sin egen dator.\n\nVarje begäran loggas.\n';
export const HELPDESK_EN = 'Call the Service Desk on 010-123 45 67';
export const HELPDESK_SV = 'Ring IT-supporten på 010-123 45 67';
export const HELPDESK_URL = 'https://servicedesk.example.com/';

export class Server {
	constructor(portal = {}, extra = {}) {
		this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-e2e-'));
		this.conf = path.join(this.dir, 'keywarden.conf');
		this.logPath = path.join(this.dir, 'server.log');
		this.log = '';
		this.proc = null;
		this.settings = mergeSettings({
			server: { listen: '127.0.0.1:0' },
			storage: {
				database: 'sqlite:' + path.join(this.dir, 'kw.db'),
				key_file: path.join(this.dir, 'master.key'),
			},
			portal: {
				company_name: 'Contoso IT',
				helpdesk_text: HELPDESK_EN,
				'helpdesk_text.sv': HELPDESK_SV,
				helpdesk_url: HELPDESK_URL,
				display_notice: 'true',
				notice_file: path.join(this.dir, 'notice.txt'),
				...portal,
			},
			identity: { domains: 'CORP:corp.example.com' },
		}, extra);
		fs.writeFileSync(path.join(this.dir, 'notice.txt'), NOTICE_EN);
		fs.writeFileSync(path.join(this.dir, 'notice.sv.txt'), NOTICE_SV);
		this.writeConfig();
	}

	/** Runs `keywarden --config CONF ...args`; throws unless it exits 0. */
	cli(args, input) {
		const r = spawnSync(BINARY, ['--config', this.conf, ...args], {
			input: input ?? '', encoding: 'utf8', cwd: this.dir, timeout: 60000,
		});
		if (r.error)
			throw r.error;
		if (r.status !== 0)
			throw new Error(`keywarden ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
		return r.stdout;
	}

	writeConfig() {
		fs.writeFileSync(this.conf, iniText(this.settings));
	}

	async start() {
		if (!fs.existsSync(BINARY))
			throw new Error(`${BINARY} does not exist: build first (ninja -C build) or set KEYWARDEN`);
		try {
			this.cli(['init', '--password-stdin'], ADMIN_PASSWORD + '\n');
		} catch (e) {
			// Builds before 4326bfa refused "listen = 127.0.0.1:0": fall
			// back to a free port picked here.
			if (!/is not HOST:PORT/.test(e.message))
				throw e;
			this.portZeroRefused = true;
			this.settings.server.listen = `127.0.0.1:${await freePort()}`;
			this.writeConfig();
			this.cli(['init', '--password-stdin'], ADMIN_PASSWORD + '\n');
		}
		for (let attempt = 1; ; attempt++) {
			try {
				return await this.serve();
			} catch (e) {
				// A port picked here may have been taken meanwhile.
				if (!this.portZeroRefused || attempt === 3 || !/in use|bind/i.test(e.message))
					throw e;
				this.settings.server.listen = `127.0.0.1:${await freePort()}`;
				this.writeConfig();
			}
		}
	}

	async serve() {
		this.log = '';
		const log = fs.createWriteStream(this.logPath);
		const proc = spawn(BINARY, ['--config', this.conf, 'serve'], {
			cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'],
		});
		this.proc = proc;
		live.add(proc);
		const exited = new Promise((resolve) => proc.on('exit', (code, sig) => {
			live.delete(proc);
			resolve({ code, sig });
		}));
		this.exited = exited;
		const onData = (d) => { this.log += d.toString(); log.write(d); };
		proc.stdout.on('data', onData);
		proc.stderr.on('data', onData);
		const m = await Promise.race([
			waitFor(() => /keywarden listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(this.log),
				{ timeoutMs: 15000, intervalMs: 20, what: 'the "listening" log line' }),
			exited.then(({ code, sig }) => {
				throw new Error(`keywarden serve exited (${code ?? sig}) before listening:\n${this.log}`);
			}),
		]);
		this.url = m[1];
		this.origin = new URL(this.url).origin;
		return this;
	}

	async stop() {
		const proc = this.proc;
		if (proc && live.has(proc)) {
			proc.kill('SIGTERM');
			const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
			await this.exited;
			clearTimeout(t);
		}
		this.proc = null;
		if (!process.env.KW_KEEP)
			fs.rmSync(this.dir, { recursive: true, force: true });
	}

	// -- seeding --

	addUser(name, password) {
		this.cli(['user', 'add', name, '--password-stdin'], password + '\n');
	}

	enrollmentToken() {
		if (!this.token)
			this.token = this.cli(['enroll', 'create']).trim();
		return this.token;
	}

	async api(pathname, body, secret) {
		const headers = { 'Content-Type': 'application/json' };
		if (secret)
			headers.Authorization = `Bearer ${secret}`;
		const r = await fetch(this.url + pathname, {
			method: 'POST', headers, body: JSON.stringify(body),
		});
		const text = await r.text();
		return { status: r.status, body: text ? JSON.parse(text) : null };
	}

	/** Registers a device and checks in its keys (one volume) and logons. */
	async device({ name, keys, logons, domain = 'CORP' }) {
		const reg = await this.api('/api/v1/register', {
			enrollment_token: this.enrollmentToken(), name, domain, os: 'Windows 11 Pro 23H2',
		});
		if (reg.status !== 201 && reg.status !== 200)
			throw new Error(`register ${name}: ${reg.status} ${JSON.stringify(reg.body)}`);
		const checkin = await this.api('/api/v1/checkin', {
			os: 'Windows 11 Pro 23H2',
			volumes: [{
				id: randomUUID().toUpperCase(), mount: 'C:', type: 'os', protection: 'on',
				encryption: 'xts_aes_256', percent_encrypted: 100,
				recovery_keys: keys.map((k) => ({ key_id: k.id, recovery_password: k.password })),
			}],
			logons: logons.map(([user, type]) => ({ user, type, at: '2026-11-20T08:00:00Z' })),
		}, reg.body.device_secret);
		if (checkin.status !== 200)
			throw new Error(`checkin ${name}: ${checkin.status} ${JSON.stringify(checkin.body)}`);
		return { ...reg.body, name, keys };
	}
}

/**
 * The standard cast: alice and bob, bob's key sharing alice's first key's
 * 8-character prefix, alice holding two keys that share another prefix, and
 * a computer alice used only over remote desktop.
 */
export async function seedStandard(server) {
	const people = {
		alice: { account: 'CORP\\alice', login: 'alice', password: 'Alice-Secret-2026!' },
		bob: { account: 'CORP\\bob', login: 'bob', password: 'Bob-Secret-2026!' },
	};
	server.addUser(people.alice.account, people.alice.password);
	server.addUser(people.bob.account, people.bob.password);

	const shared = hexPrefix(), twin = hexPrefix(), remote = hexPrefix();
	const aliceKey = { id: keyId(shared), password: recoveryPassword() };
	const bobKey = { id: keyId(shared), password: recoveryPassword() };
	const twinKeys = [{ id: keyId(twin), password: recoveryPassword() },
		{ id: keyId(twin), password: recoveryPassword() }];
	const remoteKey = { id: keyId(remote), password: recoveryPassword() };

	const alicePc = await server.device({ name: 'PC-ALICE-0042', keys: [aliceKey],
		logons: [['CORP\\alice', 'local']] });
	const bobPc = await server.device({ name: 'PC-BOB-0077', keys: [bobKey],
		logons: [['CORP\\bob', 'local']] });
	const aliceLab = await server.device({ name: 'LAB-ALICE-0001', keys: twinKeys,
		logons: [['CORP\\alice', 'local']] });
	const server2 = await server.device({ name: 'SRV-FILES-0003', keys: [remoteKey],
		logons: [['CORP\\alice', 'remote'], ['CORP\\bob', 'local']] });
	return { people, shared, twin, remote, aliceKey, bobKey, twinKeys, remoteKey,
		alicePc, bobPc, aliceLab, server2 };
}

// ---- the browser ----------------------------------------------------------------

export async function launchBrowser() {
	if (!fs.existsSync(CHROMIUM))
		throw new Error(`${CHROMIUM} is missing`);
	return chromium.launch({
		executablePath: CHROMIUM,
		args: CHROMIUM_ARGS,
		headless: !process.env.KW_HEADED,
	});
}

/**
 * A fresh context that records every request, console message and page
 * error (CSP violations are reported to the console as errors).
 */
export async function newContext(browser, options = {}) {
	const context = await browser.newContext({
		viewport: PHONE, locale: 'en-US', ...options,
	});
	const rec = { requests: [], console: [], pageErrors: [], responses: [] };
	context.on('request', (r) => rec.requests.push(r.url()));
	context.on('response', (r) => rec.responses.push({ url: r.url(), status: r.status() }));
	context.on('page', (page) => {
		page.on('console', (m) => rec.console.push({ type: m.type(), text: m.text(), url: m.location().url }));
		page.on('pageerror', (e) => rec.pageErrors.push(String(e)));
	});
	context.rec = rec;
	return context;
}

function slug(s) {
	return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

/**
 * Saves a screenshot as artifacts/<test>--<step>.png: the full page, or only
 * the viewport with { fullPage: false } (for fixed overlays).
 */
export async function shot(page, test, step, { fullPage = true } = {}) {
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	const file = path.join(ARTIFACTS, `${slug(test)}--${slug(step)}.png`);
	await page.screenshot({ path: file, fullPage });
	return file;
}

/**
 * Runs action (a click or key press that submits a form) and waits until the
 * new document has loaded; returns the response to the POST to `pathname`.
 */
export async function submit(page, pathname, action) {
	const [resp] = await Promise.all([
		page.waitForResponse((r) => new URL(r.url()).pathname === pathname &&
			r.request().method() === 'POST'),
		page.waitForNavigation({ waitUntil: 'domcontentloaded' }),
		action(),
	]);
	return resp;
}

/** Signs in through the form, typing like a person. Returns the response of the POST. */
export async function signIn(page, server, person, { shotAs } = {}) {
	if (!page.url().startsWith(server.url + '/login'))
		await page.goto(server.url + '/login');
	await page.locator('#username').fill('');
	await page.locator('#username').pressSequentially(person.login);
	await page.locator('#password').fill(person.password);
	if (shotAs)
		await shot(page, shotAs, 'sign-in filled');
	return submit(page, '/login', () =>
		page.locator('form[action="/login"] button[type=submit]').click());
}

/**
 * Accepts the notice (the page must be showing it). It leads to
 * self-service, or to the help desk for staff.
 */
export async function acceptNotice(page) {
	const resp = await submit(page, '/notice', () =>
		page.locator('form[action="/notice"] button[name="accept"]').click());
	if (!['/recover', '/helpdesk'].includes(new URL(page.url()).pathname))
		throw new Error(`accepting the notice led to ${page.url()} (${resp.status()})`);
	return resp;
}

/** Fills the recovery form and presses Get key; returns the POST's response. */
export async function requestKey(page, keyText, reasonLabel = /BIOS\/TPM changed|BIOS\/TPM har/) {
	await page.locator('#key_id').fill('');
	if (keyText)
		await page.locator('#key_id').pressSequentially(keyText);
	if (reasonLabel)
		await page.getByLabel(reasonLabel).check();
	return submit(page, '/recover', () =>
		page.locator('form[action="/recover"] button[type=submit]').click());
}

/** The 48 digits shown on the key page, as "dddddd-…" (8 groups). */
export async function shownKey(page) {
	const groups = await page.locator('#key > span:not(.sep)').allTextContents();
	return groups.map((g) => g.trim()).join('-');
}
