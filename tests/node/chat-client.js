#!/usr/bin/env node
// Drives a chat server (seed 001) with an official socket.io client, four namespaces on one
// Engine.IO connection per user (one Manager, its sockets for /, /friend, /group, /server).
//
//   node chat-client.js URL EIO SID1 SID2
//
// EIO 4 uses socket.io-client 4 (Engine.IO v4), EIO 3 socket.io-client 2 (Engine.IO v3). SID1 and
// SID2 are the sessions of user1 and user2 (friends, both in group g1). A (user1) uses HTTP
// long-polling only, B (user2) websocket only. A authenticates, B authenticates and A gets
// fonline; A writes to B on /friend and to g1 on /group; B asks the time; B closes and A gets
// foffline; A writes to B again (kept); B comes back as B2 and gets it in saoff, once. Prints one
// JSON summary line on stdout and exits 0, or "chat-client: FAIL: ..." on stderr and exits 1.
'use strict';

const [url, eioArg, sid1, sid2] = process.argv.slice(2);
if (!url || (eioArg !== '3' && eioArg !== '4') || !sid1 || !sid2) {
  console.error('usage: node chat-client.js URL EIO(3|4) SID1 SID2');
  process.exit(2);
}
const eio = Number(eioArg);
const pkgName = eio === 4 ? 'socket.io-client' : 'socket.io-client-v2';
const pkg = require(pkgName);
const clientVersion = require(`${pkgName}/package.json`).version;
const TIMEOUT_MS = Number(process.env.CHAT_CLIENT_TIMEOUT_MS || 10000);
const QUIET_MS = 300;
const EVENTS = {
  '/': ['auth-s', 'err'],
  '/friend': ['receivefsmg', 'fonline', 'foffline', 'err'],
  '/group': ['receivefsmg', 'err'],
  '/server': ['stime', 'saoff', 'shistory', 'err'],
};

const managers = [];
let done = false;
function fail(msg) {
  if (done) return;
  done = true;
  console.error(`chat-client: FAIL (EIO=${eio}, socket.io-client ${clientVersion}): ${msg}`);
  for (const m of managers) m.close();
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

function check(cond, msg) {
  if (!cond) fail(msg);
}

function canon(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const out = {};
  for (const k of Object.keys(v).sort()) out[k] = v[k];
  return out;
}

function same(got, want, what) {
  check(JSON.stringify(canon(got)) === JSON.stringify(canon(want)),
    `${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

// One user: one Manager (one Engine.IO connection), a socket per namespace, a mailbox per
// (namespace, event).
function user(name, transports) {
  const opts = { transports, reconnection: false, timeout: 5000, forceNew: true };
  const mgr = eio === 4 ? new pkg.Manager(url, opts) : pkg.Manager(url, opts);
  managers.push(mgr);
  const boxes = new Map();
  const waiters = new Map();
  const sockets = {};
  let expectClose = false;
  for (const [ns, events] of Object.entries(EVENTS)) {
    const socket = mgr.socket(ns);
    sockets[ns] = socket;
    for (const event of events) {
      const key = `${ns} ${event}`;
      boxes.set(key, []);
      waiters.set(key, []);
      socket.on(event, (...args) => {
        if (args.length !== 1) fail(`${name} got ${key} with ${args.length} arguments`);
        const w = waiters.get(key).shift();
        if (w) w(canon(args[0]));
        else boxes.get(key).push(args[0]);
      });
    }
    socket.on('connect_error', (err) => fail(`${name} ${ns} connect_error: ${err && err.message}`));
    socket.on('disconnect', (reason) => {
      if (!done && !expectClose) fail(`${name} ${ns} disconnected: ${reason}`);
    });
  }
  const connected = Promise.all(Object.values(sockets).map(
    (s) => new Promise((resolve) => (s.connected ? resolve() : s.on('connect', resolve)))));
  return {
    name,
    sockets,
    connected,
    emit(ns, event, data) {
      sockets[ns].emit(event, data);
    },
    next(ns, event) {
      const key = `${ns} ${event}`;
      const box = boxes.get(key);
      if (box.length) return Promise.resolve(canon(box.shift()));
      return new Promise((resolve) => waiters.get(key).push(resolve));
    },
    pending() {
      const out = {};
      for (const [key, box] of boxes) if (box.length) out[key] = box;
      return out;
    },
    close() {
      expectClose = true;
      for (const s of Object.values(sockets)) s.close();
      mgr.close ? mgr.close() : mgr.disconnect();
    },
    engine() {
      return mgr.engine;
    },
  };
}

function quiet() {
  return new Promise((resolve) => setTimeout(resolve, QUIET_MS));
}

async function main() {
  const a = user('A', ['polling']);
  await a.connected;
  a.emit('/', 'auth-c', { sid: sid1 });
  same(await a.next('/', 'auth-s'), { code: 1 }, 'A auth-s');

  const b = user('B', ['websocket']);
  await b.connected;
  b.emit('/', 'auth-c', { sid: sid2 });
  same(await b.next('/', 'auth-s'), { code: 1 }, 'B auth-s');
  same(await a.next('/friend', 'fonline'), { from: 'user2', msg: 'online', to: 'user1' }, 'A fonline');

  const text = `hello from user1 over EIO${eio} ✓`;
  a.emit('/friend', 'sendfsmg', { from: 'user1', to: 'user2', msg: text });
  same(await b.next('/friend', 'receivefsmg'), { from: 'user1', msg: text, to: 'user2' },
    'B /friend receivefsmg');
  a.emit('/group', 'sendfsmg', { from: 'user1', to: 'g1', msg: 'to the group' });
  const group = { from: 'user1', msg: 'to the group', to: 'g1' };
  same(await b.next('/group', 'receivefsmg'), group, 'B /group receivefsmg');
  same(await a.next('/group', 'receivefsmg'), group, 'A /group receivefsmg (its own copy)');
  b.emit('/server', 'ctime', {});
  const time = (await b.next('/server', 'stime')).time;
  check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(time), `stime.time ${time}`);

  await quiet();
  check(Object.keys(a.pending()).length === 0, `A got unexpected events ${JSON.stringify(a.pending())}`);
  check(Object.keys(b.pending()).length === 0, `B got unexpected events ${JSON.stringify(b.pending())}`);

  const oneConnection = {
    a: new Set(Object.values(a.sockets).map((s) => s.io)).size,
    b: new Set(Object.values(b.sockets).map((s) => s.io)).size,
  };
  const transports = { a: a.engine().transport.name, b: b.engine().transport.name };
  b.close();
  same(await a.next('/friend', 'foffline'), { from: 'user2', msg: 'offline', to: 'user1' }, 'A foffline');
  a.emit('/friend', 'sendfsmg', { to: 'user2', msg: 'while you were away' });

  const b2 = user('B2', ['websocket']);
  await b2.connected;
  b2.emit('/', 'auth-c', { sid: sid2 });
  same(await b2.next('/', 'auth-s'), { code: 1 }, 'B2 auth-s');
  b2.emit('/server', 'caoff', { from: 'user2' });
  const saoff = await b2.next('/server', 'saoff');
  same(saoff.flogs, [{ from: 'user1', msg: 'while you were away', to: 'user2' }], 'B2 saoff.flogs');
  b2.emit('/server', 'caoff', { from: 'user2' });
  same((await b2.next('/server', 'saoff')).flogs, [], 'B2 second saoff.flogs');

  const summary = {
    ok: true,
    eio,
    client: `socket.io-client@${clientVersion}`,
    engine_connections: oneConnection,
    transports,
    saoff_to: saoff.to,
  };
  done = true;
  console.log(JSON.stringify(summary));
  for (const m of managers) (m.close ? m.close() : m.disconnect());
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
