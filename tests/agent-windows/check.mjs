// Checks on agent/windows/keywarden-agent.ps1 made from its syntax tree (the
// tree-sitter PowerShell grammar, WASM build, through web-tree-sitter).
// PowerShell does not run here: these checks are what stands in for running
// the script. Each check throws an Error saying what is wrong.

import { createRequire } from 'node:module';
import { Language, Parser } from 'web-tree-sitter';

const require = createRequire(import.meta.url);
let parser;

/** The parsed tree of src (PowerShell source). */
export async function parse(src) {
  if (!parser) {
    await Parser.init();
    const lang = await Language.load(
      require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
    parser = new Parser();
    parser.setLanguage(lang);
  }
  return parser.parse(src);
}

function find(node, type) {
  return node.descendantsOfType(type).filter((n) => n.id !== node.id);
}

function fail(msg) {
  throw new Error(msg);
}

function line(node) {
  return `line ${node.startPosition.row + 1}`;
}

// Every node, anonymous ones too (a MISSING "}" is one).
function* allNodes(node) {
  yield node;
  for (const c of node.children) yield* allNodes(c);
}

/** The script parses with no ERROR or MISSING node. */
export function checkSyntax(tree) {
  const bad = [...allNodes(tree.rootNode)].filter((n) => n.isError || n.isMissing);
  if (tree.rootNode.hasError && !bad.length) fail('syntax errors (hasError)');
  if (bad.length)
    fail('syntax errors: ' + bad.slice(0, 5).map((n) =>
      `${n.isMissing ? 'MISSING ' + n.type : 'ERROR'} at ${line(n)}: ` +
      JSON.stringify(n.text.slice(0, 60))).join('; '));
}

/** Map of function name -> function_statement node (each name once). */
export function functions(tree) {
  const out = new Map();
  for (const f of find(tree.rootNode, 'function_statement')) {
    const name = f.namedChildren.find((c) => c.type === 'function_name').text;
    if (out.has(name)) fail(`function ${name} is defined twice`);
    out.set(name, f);
  }
  return out;
}

function fn(tree, name) {
  return functions(tree).get(name) ?? fail(`no function ${name}`);
}

function commandName(cmd) {
  return cmd.namedChildren.find((c) => c.type === 'command_name')?.text ?? '';
}

/** The command nodes under node named name (case-insensitive). */
export function commands(node, name) {
  return find(node, 'command').filter(
    (c) => commandName(c).toLowerCase() === name.toLowerCase());
}

function enclosing(node, type) {
  for (let p = node.parent; p; p = p.parent) if (p.type === type) return p;
  return null;
}

function enclosingFunction(node) {
  const f = enclosing(node, 'function_statement');
  return f ? f.namedChildren.find((c) => c.type === 'function_name').text : null;
}

function unquote(text) {
  return /^(['"]).*\1$/s.test(text) ? text.slice(1, -1) : text;
}

function entryKey(entry) {
  return unquote(entry.namedChildren.find((c) => c.type === 'key_expression').text);
}

function entryValue(entry) {
  return entry.namedChildren[entry.namedChildren.length - 1];
}

function entries(hash) {
  const body = hash.namedChildren.find((c) => c.type === 'hash_literal_body');
  return body ? body.namedChildren.filter((c) => c.type === 'hash_entry') : [];
}

// The hash literals under node that are not inside another one under it.
function topHashes(node) {
  const out = [];
  for (const c of node.namedChildren) {
    if (c.type === 'hash_literal_expression') out.push(c);
    else out.push(...topHashes(c));
  }
  return out;
}

function isOrdered(hash) {
  const cast = hash.parent?.parent;
  return cast?.type === 'cast_expression' &&
    /^\[ordered\]$/i.test(cast.namedChildren[0].text);
}

/** The shape a hash literal builds: [[key, shape], ...] in order, where a
 * shape is 'scalar', such a list (an object) or {array: shape} (an array of
 * what one @( ... ) makes). Every hash must be [ordered] (JSON keeps the
 * order). */
export function hashShape(hash) {
  if (!isOrdered(hash)) fail(`the hashtable at ${line(hash)} is not [ordered]`);
  return entries(hash).map((e) => {
    const value = entryValue(e);
    const inner = topHashes(value);
    if (inner.length === 0) return [entryKey(e), 'scalar'];
    if (inner.length > 1) fail(`${entryKey(e)} at ${line(e)}: more than one hashtable`);
    const shape = hashShape(inner[0]);
    let arrayed = false;
    for (let p = inner[0].parent; p && p.id !== value.id; p = p.parent)
      if (p.type === 'array_expression') arrayed = true;
    return [entryKey(e), arrayed ? { array: shape } : shape];
  });
}

function merge(a, b, where) {
  if (a === null) return b;
  if (b === null) return a;
  if (a === 'scalar' && b === 'scalar') return a;
  if (Array.isArray(a) && Array.isArray(b)) {
    const ka = a.map(([k]) => k).join(','), kb = b.map(([k]) => k).join(',');
    if (ka !== kb) fail(`${where}: elements differ (${ka} / ${kb})`);
    return a.map(([k, s], i) => [k, merge(s, b[i][1], `${where}.${k}`)]);
  }
  if (a?.array !== undefined && b?.array !== undefined)
    return { array: merge(a.array, b.array, `${where}[]`) };
  fail(`${where}: elements of different kinds`);
}

/** The same kind of shape for a JSON value (arrays: all their elements
 * merged; an empty one says nothing about its elements). */
export function jsonShape(value, where = '') {
  if (Array.isArray(value))
    return { array: value.reduce((s, v, i) => merge(s, jsonShape(v, `${where}[${i}]`),
      where), null) };
  if (value !== null && typeof value === 'object')
    return Object.entries(value).map(([k, v]) => [k, jsonShape(v, `${where}.${k}`)]);
  return 'scalar';
}

// The hashtable a function assigns to $body.
function bodyHash(tree, name) {
  const f = fn(tree, name);
  const set = find(f, 'assignment_expression').filter((a) =>
    /^\$body$/i.test(a.namedChildren[0].text));
  if (set.length !== 1) fail(`${name} assigns $body ${set.length} times`);
  const top = topHashes(set[0]);
  if (top.length !== 1) fail(`${name}'s $body is not one hashtable`);
  return top[0];
}

/** The shape of the hashtable New-KwCheckinBody builds (the check-in's
 * body, SPEC §5), and that it is turned into JSON there. */
export function checkinBodyShape(tree) {
  const f = fn(tree, 'New-KwCheckinBody');
  const body = bodyHash(tree, 'New-KwCheckinBody');
  if (topHashes(f).length !== 1) fail('New-KwCheckinBody builds another hashtable');
  if (commands(f, 'ConvertTo-Json').length !== 1)
    fail('New-KwCheckinBody does not end in one ConvertTo-Json');
  // Every JSON the script sends is made by one of two builders.
  for (const c of commands(tree.rootNode, 'ConvertTo-Json')) {
    const where = enclosingFunction(c);
    if (where !== 'New-KwCheckinBody' && where !== 'Register-KwDevice')
      fail(`ConvertTo-Json outside the two body builders, in ${where} (${line(c)})`);
  }
  if (!/-InputObject\s+\$body\b/i.test(commands(f, 'ConvertTo-Json')[0].text))
    fail('New-KwCheckinBody does not convert $body');
  return hashShape(body);
}

/** The PowerShell text of the value New-KwCheckinBody gives field key
 * (e.g. '[int]$v.Percent' for percent_encrypted). */
export function checkinFieldValue(tree, key) {
  const found = find(bodyHash(tree, 'New-KwCheckinBody'), 'hash_entry').filter(
    (e) => entryKey(e) === key);
  if (found.length !== 1) fail(`${key} is in the check-in body ${found.length} times`);
  return entryValue(found[0]).text;
}

/** The register body's shape (SPEC §5: enrollment_token, name, domain, os). */
export function registerBodyShape(tree) {
  return hashShape(bodyHash(tree, 'Register-KwDevice'));
}

/** A top-level `$Name = @{ key = 'literal'; ... }` as a plain object. */
export function literalMap(tree, variable) {
  const found = find(tree.rootNode, 'assignment_expression').filter((a) =>
    a.namedChildren[0].text.toLowerCase() === `$${variable}`.toLowerCase());
  if (found.length !== 1) fail(`$${variable} is assigned ${found.length} times`);
  const [hash] = topHashes(found[0]);
  if (!hash) fail(`$${variable} is not a hashtable`);
  const out = {};
  for (const e of entries(hash)) {
    const lits = find(entryValue(e), 'string_literal');
    const v = entryValue(e).text;
    if (lits.length !== 1 || lits[0].text !== v.trim())
      fail(`$${variable}[${entryKey(e)}] is not a string literal: ${v}`);
    out[entryKey(e)] = unquote(lits[0].text);
  }
  return out;
}

/** The string literals a function returns (`return 'x'`). */
export function returnedLiterals(tree, name) {
  const out = [];
  for (const s of find(fn(tree, name), 'flow_control_statement')) {
    if (!/^return\b/i.test(s.text)) continue;
    const lits = find(s, 'string_literal');
    if (lits.length !== 1) fail(`${name}: a return that is not one literal (${line(s)})`);
    out.push(unquote(lits[0].text));
  }
  return out;
}

// The statement of f's body (its top statement_list) that holds node.
function topStatement(f, node) {
  const list = find(f, 'statement_list')[0];
  for (let n = node; n; n = n.parent) if (n.parent?.id === list.id) return n;
  return null;
}

/** Remove-BitLockerKeyProtector is reached only after the server
 * acknowledged the new keys. From the tree this is checked as:
 *  1. $ErrorActionPreference = 'Stop' at the script's top level (a failing
 *     cmdlet throws) and no `trap` anywhere;
 *  2. Invoke-KwPost calls Invoke-WebRequest (which throws on 4xx/5xx) with
 *     no -ErrorAction and no try, and throws when StatusCode is not 2xx;
 *     Send-KwCheckin calls Invoke-KwPost, with no try;
 *  3. there is one Remove-BitLockerKeyProtector, in Invoke-KwRotation, which
 *     has no try; that function's body has, as unconditional statements in
 *     this order: the statement holding Add-BitLockerKeyProtector, a
 *     `$json = New-KwCheckinBody ...`, a Send-KwCheckin with -Json $json,
 *     and then the statement holding the Remove.
 * So an exception (no answer, a non-2xx) leaves Invoke-KwRotation before the
 * Remove, and the check-in it follows carries the volumes as they are after
 * the Add. What it cannot see: the cmdlets' behaviour on Windows. */
export function checkRemoveAfterAck(tree) {
  const root = tree.rootNode;
  const top = find(root, 'assignment_expression').filter((a) =>
    /^\$ErrorActionPreference$/i.test(a.namedChildren[0].text) &&
    enclosing(a, 'function_statement') === null);
  if (top.length !== 1 || !/=\s*'Stop'$/.test(top[0].text))
    fail("the script does not set $ErrorActionPreference = 'Stop' at its top level");
  if (find(root, 'trap_statement').length) fail('the script has a trap');

  const post = fn(tree, 'Invoke-KwPost');
  if (find(post, 'try_statement').length) fail('Invoke-KwPost has a try');
  const iwr = commands(post, 'Invoke-WebRequest');
  if (iwr.length !== 1) fail('Invoke-KwPost does not call Invoke-WebRequest once');
  if (/-ErrorAction|-EA\b/i.test(iwr[0].text)) fail('Invoke-WebRequest has -ErrorAction');
  const guard = find(post, 'if_statement').find((s) =>
    /StatusCode/.test(s.text) && find(s, 'flow_control_statement').some((t) =>
      /^throw\b/i.test(t.text)));
  if (!guard) fail('Invoke-KwPost does not throw on a status other than 2xx');

  const send = fn(tree, 'Send-KwCheckin');
  if (find(send, 'try_statement').length) fail('Send-KwCheckin has a try');
  if (commands(send, 'Invoke-KwPost').length !== 1) fail('Send-KwCheckin does not post');

  const removes = commands(root, 'Remove-BitLockerKeyProtector');
  if (removes.length !== 1) fail(`${removes.length} Remove-BitLockerKeyProtector calls`);
  if (enclosingFunction(removes[0]) !== 'Invoke-KwRotation')
    fail('Remove-BitLockerKeyProtector is not in Invoke-KwRotation');
  const rot = fn(tree, 'Invoke-KwRotation');
  if (find(rot, 'try_statement').length) fail('Invoke-KwRotation has a try');
  const adds = commands(rot, 'Add-BitLockerKeyProtector');
  const sends = commands(rot, 'Send-KwCheckin');
  if (adds.length !== 1 || sends.length !== 1)
    fail('Invoke-KwRotation needs one Add-BitLockerKeyProtector and one Send-KwCheckin');
  if (!/-Json\s+\$json\b/i.test(sends[0].text)) fail('Send-KwCheckin is not sent $json');
  const build = find(rot, 'assignment_expression').filter((a) =>
    /^\$json$/i.test(a.namedChildren[0].text));
  if (build.length !== 1 || commands(build[0], 'New-KwCheckinBody').length !== 1)
    fail('$json in Invoke-KwRotation is not made by New-KwCheckinBody once');
  const order = [adds[0], build[0], sends[0], removes[0]].map((n) => topStatement(rot, n));
  if (order.some((s) => s === null)) fail('a step of the rotation is not in its body');
  const [a, b, s, r] = order;
  if (b.type !== 'pipeline' || s.type !== 'pipeline')
    fail('the rotation check-in is conditional (inside an if or a loop)');
  if (!(a.startIndex < b.startIndex && b.startIndex < s.startIndex &&
        s.startIndex < r.startIndex))
    fail('Invoke-KwRotation does not add, check in and then remove, in that order');
}

/** Every Send-KwCheckin is sent a $json that New-KwCheckinBody made in the
 * same function (the fixture's shape is the only check-in sent). */
export function checkEverySendUsesTheBuilder(tree) {
  const sends = commands(tree.rootNode, 'Send-KwCheckin');
  if (!sends.length) fail('no Send-KwCheckin');
  for (const c of sends) {
    const f = fn(tree, enclosingFunction(c));
    const m = /-Json\s+\$(\w+)/i.exec(c.text) ?? fail(`Send-KwCheckin at ${line(c)}: no -Json $var`);
    const made = find(f, 'assignment_expression').filter((a) =>
      a.namedChildren[0].text.toLowerCase() === `$${m[1]}`.toLowerCase());
    if (!made.length || !made.every((a) => commands(a, 'New-KwCheckinBody').length === 1))
      fail(`Send-KwCheckin at ${line(c)}: $${m[1]} is not made by New-KwCheckinBody`);
  }
}
