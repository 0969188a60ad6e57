#!/usr/bin/env node
// Drives a push server (seed 002) with the official socket.io client and Node's own fetch.
//
//   node push-client.js URL EIO
//
// EIO 4 uses socket.io-client 4, EIO 3 socket.io-client 2. Clients A (long-polling) and B
// (websocket) connect and must get downmsg 2001. A logs into room "456" (loginWhenFirst, the
// default); B tries room 456 (the number) and must get 2004, then logs in with loginWhenever;
// a fetch POST /api/push into "456" must reach A and B with data untouched, answered 0000; C
// logs in with loginWhenLast and A and B must get 2005; the next push reaches C only; a push
// without eventName reaches nobody; a body that is not JSON answers 400. Prints one JSON summary
// line on stdout and exits 0, or prints "push-client: FAIL: ..." on stderr and exits 1.
'use strict';

const [url, eioArg] = process.argv.slice(2);
if (!url || (eioArg !== '3' && eioArg !== '4')) {
  console.error('usage: node push-client.js URL EIO(3|4)');
  process.exit(2);
}
const eio = Number(eioArg);
const pkgName = eio === 4 ? 'socket.io-client' : 'socket.io-client-v2';
const ioFactory = eio === 4 ? require(pkgName).io : require(pkgName);
const TIMEOUT_MS = 15000;
const QUIET_MS = 300;

const sockets = [];
function fail(msg) {
  console.error(`push-client: FAIL (EIO=${eio}): ${msg}`);
  for (const s of sockets) s.close();
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

// One client and its mailbox of [event, payload] in arrival order.
function client(name, transports) {
  const s = ioFactory(url, { transports, forceNew: true, reconnection: false });
  sockets.push(s);
  const box = [];
  for (const ev of ['downmsg', 'news']) s.on(ev, (p) => box.push([ev, p]));
  return { name, s, box };
}

async function next(c, ev) {
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    const i = c.box.findIndex(([e]) => e === ev);
    if (i >= 0) return c.box.splice(i, 1)[0][1];
    await new Promise((r) => setTimeout(r, 10));
  }
  fail(`${c.name}: no ${ev}`);
}
const quiet = () => new Promise((r) => setTimeout(r, QUIET_MS));
function code(p) { return String(p && p.code); }
async function push(body, raw) {
  const res = await fetch(`${url}/api/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text };
}

(async () => {
  const a = client('a', ['polling']);
  const b = client('b', ['websocket']);
  for (const c of [a, b]) {
    const hello = await next(c, 'downmsg');
    if (code(hello) !== '2001') fail(`${c.name}: first downmsg ${JSON.stringify(hello)}`);
  }
  a.s.emit('loginRoom', { roomId: '456' });
  if (code(await next(a, 'downmsg')) !== '2002') fail('a: no 2002');
  b.s.emit('loginRoom', { roomId: 456 });
  const refused = await next(b, 'downmsg');
  if (code(refused) !== '2004') fail(`b: expected 2004, got ${JSON.stringify(refused)}`);
  b.s.emit('loginRoom', { roomId: 456, type: 'loginWhenever' });
  if (code(await next(b, 'downmsg')) !== '2002') fail('b: no 2002 with loginWhenever');

  const data = { n: 1, nested: { list: [1, 'two', null, true] }, s: 'ü' };
  const first = await push({ ROOT: { BODY: { roomId: '456', eventName: 'news', data } } });
  if (first.status !== 200 || JSON.parse(first.text).ROOT.BODY.RETURN_CODE !== '0000') {
    fail(`push answered ${first.status} ${first.text}`);
  }
  for (const c of [a, b]) {
    const got = await next(c, 'news');
    if (JSON.stringify(got) !== JSON.stringify(data)) fail(`${c.name}: data ${JSON.stringify(got)}`);
  }

  const cc = client('c', ['websocket']);
  await next(cc, 'downmsg');
  cc.s.emit('loginRoom', { roomId: '456', type: 'loginWhenLast' });
  if (code(await next(cc, 'downmsg')) !== '2002') fail('c: no 2002');
  for (const c of [a, b]) {
    const kicked = await next(c, 'downmsg');
    if (code(kicked) !== '2005') fail(`${c.name}: expected 2005, got ${JSON.stringify(kicked)}`);
  }
  await push({ ROOT: { BODY: { roomId: 456, eventName: 'news', data: 2 } } });
  if ((await next(cc, 'news')) !== 2) fail('c: second push');
  const noEvent = await push({ ROOT: { BODY: { roomId: '456', data: 3 } } });
  const notJson = await push('not json', true);
  await quiet();
  for (const c of [a, b, cc]) {
    if (c.box.length) fail(`${c.name}: unexpected ${JSON.stringify(c.box)}`);
  }
  console.log(JSON.stringify({
    ok: true,
    eio,
    no_event_status: noEvent.status,
    not_json_status: notJson.status,
  }));
  for (const s of sockets) s.close();
  process.exit(0);
})().catch((e) => fail(String(e && e.stack || e)));
