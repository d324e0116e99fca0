/* keywarden portal: the session timeout countdown, and the copy and save
 * buttons of a key page. Everything else works without JavaScript. */
(function () {
	'use strict';

	function setupCopy() {
		var button = document.getElementById('copy');
		var status = document.getElementById('copied');
		var text = document.getElementById('copied-text');

		if (!button || !navigator.clipboard)
			return;
		button.hidden = false;
		button.addEventListener('click', function () {
			navigator.clipboard.writeText(button.getAttribute('data-key')).then(function () {
				status.textContent = text ? text.textContent : '';
			});
		});
	}

	/* Save (help desk): a small text file of the computer, the key ID and
	 * the key, made here from the page (no second request for the key). */
	function setupSave() {
		var button = document.getElementById('save');
		var copy = document.getElementById('copy');
		var key = document.getElementById('key-label');

		if (!button || !copy || !key || !window.Blob || !window.URL ||
		    !URL.createObjectURL)
			return;
		button.hidden = false;
		button.addEventListener('click', function () {
			var fields = document.querySelectorAll('#keybox dd[data-save]');
			var lines = [];
			var url, link;

			for (var i = 0; i < fields.length; i++)
				lines.push(fields[i].previousElementSibling.textContent.trim() + ': ' +
					   fields[i].textContent.trim());
			lines.push(key.textContent.trim() + ': ' + copy.getAttribute('data-key'));
			url = URL.createObjectURL(new Blob([lines.join('\r\n') + '\r\n'],
							   { type: 'text/plain;charset=utf-8' }));
			link = document.createElement('a');
			link.href = url;
			link.download = button.getAttribute('data-file');
			link.hidden = true;
			document.body.appendChild(link);
			link.click();
			link.parentNode.removeChild(link);
			/* The browser has the file once the click is handled. */
			setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
		});
	}

	function setupTimeout() {
		var body = document.body;
		var remaining = parseInt(body.getAttribute('data-remaining'), 10);
		var warning = parseInt(body.getAttribute('data-warning'), 10);
		var overlay = document.getElementById('timeout');
		var message = document.getElementById('timeout-text');
		var form = document.getElementById('keepalive');
		var button = document.getElementById('keepalive-button');
		var behind = document.querySelectorAll('body > :not(#timeout)');
		var deadline, timer, expired = false;

		if (isNaN(remaining) || !overlay || !form)
			return;
		if (isNaN(warning))
			warning = 60;
		deadline = Date.now() + remaining * 1000;

		/* A modal dialog: what is behind it cannot be reached meanwhile. */
		function show(on) {
			overlay.hidden = !on;
			for (var i = 0; i < behind.length; i++)
				behind[i].inert = on;
			if (on)
				button.focus();
		}

		/* The key must not stay on screen once the session is gone. */
		function expire() {
			var secret = document.getElementById('keybox');

			if (expired)
				return;
			expired = true;
			clearTimeout(timer);
			if (secret)
				secret.parentNode.removeChild(secret);
			/* The session ends on the server by a POST with its token
			 * (a GET changes nothing), then the page says why. */
			fetch('/logout', {
				method: 'POST',
				body: new URLSearchParams(new FormData(form)),
				credentials: 'same-origin',
				redirect: 'manual'
			}).catch(function () {}).then(function () {
				window.location.replace('/session/expired');
			});
		}

		function tick() {
			var left = Math.ceil((deadline - Date.now()) / 1000);

			if (left <= 0) {
				expire();
				return;
			}
			if (left <= warning) {
				message.textContent = left === 1 ?
					message.getAttribute('data-one') :
					message.getAttribute('data-template').replace('%s', String(left));
				if (overlay.hidden)
					show(true);
			} else if (!overlay.hidden) {
				show(false);
			}
			/* Wake just after the count reaches the next whole second. */
			var ms = (deadline - Date.now()) % 1000;
			timer = setTimeout(tick, (ms > 0 ? ms : 1000) + 20);
		}

		form.addEventListener('submit', function (event) {
			event.preventDefault();
			fetch(form.action, {
				method: 'POST',
				body: new URLSearchParams(new FormData(form)),
				credentials: 'same-origin',
				headers: { 'Accept': 'application/json' }
			}).then(function (response) {
				if (!response.ok)
					throw new Error('session ended');
				return response.json();
			}).then(function (data) {
				deadline = Date.now() + data.remaining * 1000;
				show(false);
				clearTimeout(timer);
				tick();
			}).catch(expire);
		});

		document.addEventListener('keydown', function (event) {
			if (event.key === 'Escape' && !overlay.hidden)
				form.requestSubmit ? form.requestSubmit() : button.click();
		});
		tick();
	}

	setupCopy();
	setupSave();
	setupTimeout();
}());
