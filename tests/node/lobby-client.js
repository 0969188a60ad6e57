#!/usr/bin/env node
// Drives a lobby server (seed 004) with an official socket.io client.
//
//   node lobby-client.js URL EIO
//
// EIO 4 uses socket.io-client 4 (Engine.IO v4), EIO 3 uses socket.io-client 2 (Engine.IO v3, what
// the seed's App Inventor extension and its public server speak). Client A uses HTTP long-polling
// only, clients B and C websocket only. A and B log in, C tries A's name; A creates a room for 2,
// B joins it; A sends a room message, a private message to B, B a public message; then B
// disconnects and A must see otherLeftRoom, then otherLogedout. Every event is checked against
// the lobby protocol, recipients included. Prints one JSON summary line on stdout and exits 0, or
// prints "lobby-client: FAIL: ..." on stderr and exits 1 (2 for bad usage).
'use strict';

const [url, eioArg] = process.argv.slice(2);
if (!url || (eioArg !== '3' && eioArg !== '4')) {
  console.error('usage: node lobby-client.js URL EIO(3|4)');
  process.exit(2);
}
const eio = Number(eioArg);
const pkgName = eio === 4 ? 'socket.io-client' : 'socket.io-client-v2';
const ioFactory = eio === 4 ? require(pkgName).io : require(pkgName);
const clientVersion = require(`${pkgName}/package.json`).version;
const TIMEOUT_MS = Number(process.env.LOBBY_CLIENT_TIMEOUT_MS || 10000);
const QUIET_MS = 300;
const EVENTS = [
  'logedin', 'otherLogedin', 'joinedRoom', 'otherJoinedRoom', 'leftRoom', 'otherLeftRoom',
  'gotRoomMessage', 'gotPublicMessage', 'gotPrivateMessage', 'otherLogedout', 'err',
];
const ROOM = 'lobby-room';

const sockets = [];
let done = false;
function fail(msg) {
  if (done) return;
  done = true;
  console.error(`lobby-client: FAIL (EIO=${eio}, socket.io-client ${clientVersion}): ${msg}`);
  for (const s of sockets) s.close();
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

function check(cond, msg) {
  if (!cond) fail(msg);
}

function same(got, want, what) {
  check(JSON.stringify(canon(got)) === JSON.stringify(canon(want)),
    `${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

// The keys of a received object in a canonical order, for exact comparisons.
function canon(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const out = {};
  for (const k of Object.keys(v).sort()) out[k] = v[k];
  return out;
}

// One client with a mailbox per event name (socket.io-client 2 has no onAny) and the arrival
// order of everything it received.
function client(name, transports) {
  const socket = ioFactory(url, {
    transports,
    forceNew: true,
    reconnection: false,
    timeout: 5000,
  });
  sockets.push(socket);
  const boxes = new Map(EVENTS.map((e) => [e, []]));
  const waiters = new Map(EVENTS.map((e) => [e, []]));
  const arrivals = [];
  let expectClose = false;
  for (const event of EVENTS) {
    socket.on(event, (...args) => {
      if (args.length !== 1) fail(`${name} got ${event} with ${args.length} arguments`);
      arrivals.push(event);
      const w = waiters.get(event).shift();
      if (w) w(args[0]);
      else boxes.get(event).push(args[0]);
    });
  }
  socket.on('connect_error', (err) => fail(`${name} connect_error: ${err && err.message}`));
  socket.on('error', (err) => fail(`${name} error: ${err && (err.message || err)}`));
  socket.on('disconnect', (reason) => {
    if (!done && !expectClose) fail(`${name} disconnected: ${reason}`);
  });
  return {
    name,
    socket,
    arrivals,
    connected: new Promise((resolve) => socket.on('connect', resolve)),
    next(event) {
      const box = boxes.get(event);
      if (box.length) return Promise.resolve(canon(box.shift()));
      return new Promise((resolve) => waiters.get(event).push((v) => resolve(canon(v))));
    },
    pending() {
      const out = {};
      for (const [event, box] of boxes) if (box.length) out[event] = box;
      return out;
    },
    close() {
      expectClose = true;
      socket.close();
    },
    transport() {
      const engine = socket.io && socket.io.engine;
      return engine && engine.transport ? engine.transport.name : null;
    },
    engineProtocol() {
      const engine = socket.io && socket.io.engine;
      const q = engine && engine.transport && engine.transport.query;
      return q && q.EIO !== undefined ? Number(q.EIO) : null;
    },
  };
}

function quiet() {
  return new Promise((resolve) => setTimeout(resolve, QUIET_MS));
}

async function main() {
  const a = client('A', ['polling']);
  await a.connected;
  a.socket.emit('login', 'alice');
  same(await a.next('logedin'), { numusers: 1, username: 'alice' }, 'A logedin');

  const b = client('B', ['websocket']);
  await b.connected;
  b.socket.emit('login', 'bob');
  same(await b.next('logedin'), { numusers: 2, username: 'bob' }, 'B logedin');
  same(await a.next('otherLogedin'), { numusers: 2, username: 'bob' }, 'A otherLogedin');

  // A taken name is refused with a bare string on `err`, to the requester only.
  const c = client('C', ['websocket']);
  await c.connected;
  c.socket.emit('login', 'alice');
  const dup = await c.next('err');
  same(dup, 'duplicate username', 'C err');
  c.close();

  a.socket.emit('joinRoom', ROOM, 2);
  same(await a.next('joinedRoom'), { roomname: ROOM, username: 'alice', userlist: ['alice'] },
    'A joinedRoom');
  b.socket.emit('joinRoom', ROOM, 10);
  const joined = { roomname: ROOM, username: 'bob', userlist: ['alice', 'bob'] };
  same(await b.next('joinedRoom'), joined, 'B joinedRoom');
  same(await a.next('otherJoinedRoom'), joined, 'A otherJoinedRoom');

  const text = `hello from alice over EIO${eio} ✓`;
  a.socket.emit('roomMessage', ROOM, text);
  const roomMsg = { content: text, roomname: ROOM, username: 'alice' };
  const [roomA, roomB] = await Promise.all([a.next('gotRoomMessage'), b.next('gotRoomMessage')]);
  same(roomA, roomMsg, 'A gotRoomMessage');
  same(roomB, roomMsg, 'B gotRoomMessage');

  a.socket.emit('privateMessage', 'bob', 'psst');
  same(await b.next('gotPrivateMessage'), { content: 'psst', username: 'alice' },
    'B gotPrivateMessage');
  a.socket.emit('privateMessage', 'nobody', 'psst');
  same(await a.next('err'), 'no such user', 'A err');

  b.socket.emit('publicMessage', 'hi all');
  const pub = { content: 'hi all', username: 'bob' };
  same(await a.next('gotPublicMessage'), pub, 'A gotPublicMessage');
  same(await b.next('gotPublicMessage'), pub, 'B gotPublicMessage');

  await quiet();
  check(Object.keys(a.pending()).length === 0, `A got unexpected events ${JSON.stringify(a.pending())}`);
  check(Object.keys(b.pending()).length === 0, `B got unexpected events ${JSON.stringify(b.pending())}`);

  // B goes away: A sees B leave the room first, then log out.
  const bTransport = b.transport();
  const bProtocol = b.engineProtocol();
  const before = a.arrivals.length;
  b.close();
  same(await a.next('otherLeftRoom'), { roomname: ROOM, username: 'bob', userlist: ['alice'] },
    'A otherLeftRoom');
  same(await a.next('otherLogedout'), { numusers: 1, username: 'bob' }, 'A otherLogedout');
  const afterClose = a.arrivals.slice(before);
  same(afterClose, ['otherLeftRoom', 'otherLogedout'], 'A events after B closed');

  await quiet();
  check(Object.keys(a.pending()).length === 0, `A got unexpected events ${JSON.stringify(a.pending())}`);
  check(a.arrivals.length === before + 2, `A got more after B closed: ${a.arrivals.slice(before)}`);

  const summary = {
    ok: true,
    eio,
    client: `socket.io-client@${clientVersion}`,
    engine_protocol: { a: a.engineProtocol(), b: bProtocol },
    transports: { a: a.transport(), b: bTransport },
    duplicate_error: dup,
    userlist_after_joins: joined.userlist,
    room_message: { received_by: ['a', 'b'], content: roomB.content },
    after_disconnect: afterClose,
  };
  done = true;
  console.log(JSON.stringify(summary));
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
