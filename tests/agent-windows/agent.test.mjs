// The Windows agent, checked without Windows: agent/windows/keywarden-agent.ps1
// parsed with the tree-sitter PowerShell grammar, then its JSON builders,
// enumerations and rotation order checked on the syntax tree (check.mjs).
// Each check also runs on a broken copy of the script and must fail there.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

let check;
try {
  check = await import('./check.mjs');
} catch (e) {
  throw new Error(`run npm ci in tests/agent-windows first (tools/test does): ${e.message}`);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const SCRIPT = fs.readFileSync(path.join(repo, 'agent/windows/keywarden-agent.ps1'), 'utf8');
const FIXTURE = JSON.parse(fs.readFileSync(path.join(repo, 'tests/fixtures/agent-checkin.json'),
  'utf8'));

// SPEC §5's enumerations.
const VOLUME_TYPES = ['os', 'fixed', 'removable'];
const PROTECTIONS = ['on', 'off', 'suspended'];
const LOGON_TYPES = ['local', 'remote'];

// src with `from` replaced (it must be there) by `to`.
function broken(src, from, to) {
  assert.ok(src.includes(from), `the script no longer holds ${JSON.stringify(from)}`);
  return src.replace(from, to);
}

async function tree(src = SCRIPT) {
  return check.parse(src);
}

test('parses with no ERROR or MISSING node', async () => {
  check.checkSyntax(await tree());
  await assert.rejects(async () => check.checkSyntax(await tree(
    broken(SCRIPT, 'function Get-KwState {', 'function Get-KwState {{'))), /syntax errors/);
  await assert.rejects(async () => check.checkSyntax(await tree(
    broken(SCRIPT, "$ids = @(foreach ($kid in $Rotate)", "$ids = @(foreach ($kid in $Rotate"))),
  /syntax errors/);
});

test('the check-in body has exactly the fixture\'s fields and nesting', async () => {
  const want = check.jsonShape(FIXTURE);
  assert.deepEqual(check.checkinBodyShape(await tree()), want);
  // a renamed field, a missing one, and a nesting changed are all seen
  for (const [from, to] of [
    ['percent_encrypted = [int]$v.Percent', 'percent = [int]$v.Percent'],
    ['                    at   = $l.At\n', ''],
    ['recovery_keys     = @(foreach ($k in $v.Keys) {', 'recovery_keys     = $(foreach ($k in $v.Keys) {'],
  ]) {
    const t = await tree(broken(SCRIPT, from, to));
    check.checkSyntax(t);
    assert.throws(() => assert.deepEqual(check.checkinBodyShape(t), want), Error, from);
  }
});

test('fields that are numbers in the fixture are [int] in the builder', async () => {
  const t = await tree();
  for (const [key, value] of Object.entries(FIXTURE.volumes[0])) {
    if (typeof value === 'number')
      assert.match(check.checkinFieldValue(t, key), /^\[int\]/i, key);
  }
  const bad = await tree(broken(SCRIPT, 'percent_encrypted = [int]$v.Percent',
    'percent_encrypted = "$($v.Percent)"'));
  assert.doesNotMatch(check.checkinFieldValue(bad, 'percent_encrypted'), /^\[int\]/i);
});

test('the register body has SPEC §5\'s fields', async () => {
  assert.deepEqual(check.registerBodyShape(await tree()),
    ['enrollment_token', 'name', 'domain', 'os'].map((k) => [k, 'scalar']));
});

test('enumerations are the fixture\'s and SPEC\'s strings', async () => {
  const t = await tree();
  const types = check.literalMap(t, 'VolumeTypes');
  // Win32_EncryptableVolume.VolumeType: 0 OS, 1 fixed data, 2 portable data
  assert.deepEqual(types, { 0: 'os', 1: 'fixed', 2: 'removable' });
  assert.deepEqual([...new Set(Object.values(types))].sort(), [...VOLUME_TYPES].sort());
  const logons = check.literalMap(t, 'LogonTypes');
  assert.deepEqual(logons, { 2: 'local', 7: 'local', 11: 'local', 10: 'remote' });
  assert.deepEqual([...new Set(Object.values(logons))].sort(), [...LOGON_TYPES].sort());
  assert.deepEqual(check.returnedLiterals(t, 'ConvertTo-KwProtection').sort(),
    [...PROTECTIONS].sort());
  // the fixture uses only these values
  for (const v of FIXTURE.volumes) {
    assert.ok(VOLUME_TYPES.includes(v.type), v.type);
    assert.ok(PROTECTIONS.includes(v.protection), v.protection);
  }
  for (const l of FIXTURE.logons) assert.ok(LOGON_TYPES.includes(l.type), l.type);

  const bad = await tree(broken(SCRIPT, "'10' = 'remote'", "'10' = 'Remote'"));
  assert.notDeepEqual(check.literalMap(bad, 'LogonTypes'), logons);
  const bad2 = await tree(broken(SCRIPT, "return 'suspended'", "return 'paused'"));
  assert.notDeepEqual(check.returnedLiterals(bad2, 'ConvertTo-KwProtection').sort(),
    [...PROTECTIONS].sort());
});

test('every check-in sent is built by New-KwCheckinBody', async () => {
  check.checkEverySendUsesTheBuilder(await tree());
  const t = await tree(broken(SCRIPT,
    '$json = New-KwCheckinBody -Os $os -Volumes @(Get-KwVolumes) -Logons @(Get-KwLogons',
    '$json = ConvertTo-Json -InputObject @{} ; $x = @(Get-KwLogons'));
  assert.throws(() => check.checkEverySendUsesTheBuilder(t), /not made by New-KwCheckinBody/);
});

test('Remove-BitLockerKeyProtector only after the server acknowledged (structural)', async () => {
  check.checkRemoveAfterAck(await tree());
  const remove = '        $null = Remove-BitLockerKeyProtector -MountPoint $p.Mount -KeyProtectorId $p.KeyProtectorId\n';
  const send = '    $null = Send-KwCheckin -State $State -Json $json\n';
  const cases = [
    // removed before the check-in
    [send + '    foreach ($p in $old) {\n' + remove,
      '    foreach ($p in $old) {\n' + remove + '    }\n' + send + '    foreach ($p in $old) {\n'],
    // a failed check-in swallowed
    [send, '    try { $null = Send-KwCheckin -State $State -Json $json } catch { }\n'],
    // check-in made conditional
    [send, '    if ($old.Count -gt 1) {\n' + send + '    }\n'],
    // errors no longer stop the script
    ["$ErrorActionPreference = 'Stop'", "$ErrorActionPreference = 'Continue'"],
    // a non-2xx status not refused
    ['throw "$Uri answered $($r.StatusCode)"', 'Write-Warning "$Uri answered $($r.StatusCode)"'],
    // HTTP errors silenced
    ['-UseBasicParsing -TimeoutSec 60', '-UseBasicParsing -TimeoutSec 60 -ErrorAction SilentlyContinue'],
  ];
  for (const [from, to] of cases) {
    const t = await tree(broken(SCRIPT, from, to));
    check.checkSyntax(t);
    assert.throws(() => check.checkRemoveAfterAck(t), Error, `not caught: ${to}`);
  }
});
