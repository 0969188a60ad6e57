#!/usr/bin/env node
// Drives a dorm server with an official socket.io client.
//
//   node dorm-client.js URL EIO TOKEN_A TOKEN_B
//
// EIO 4 uses socket.io-client 4 (Engine.IO v4), EIO 3 uses socket.io-client 2 (Engine.IO v3).
// TOKEN_A and TOKEN_B are two users of the same, otherwise empty, room. Client A uses HTTP
// long-polling only, client B websocket only. Both join; A sends a message, an action and an
// invalid action; every reply is checked against the dorm protocol. Prints one JSON summary
// line on stdout and exits 0, or prints "dorm-client: FAIL: ..." on stderr and exits 1
// (2 for bad usage).
'use strict';

const [url, eioArg, tokenA, tokenB] = process.argv.slice(2);
if (!url || !tokenA || !tokenB || (eioArg !== '3' && eioArg !== '4')) {
  console.error('usage: node dorm-client.js URL EIO(3|4) TOKEN_A TOKEN_B');
  process.exit(2);
}
const eio = Number(eioArg);
const pkgName = eio === 4 ? 'socket.io-client' : 'socket.io-client-v2';
const ioFactory = eio === 4 ? require(pkgName).io : require(pkgName);
const clientVersion = require(`${pkgName}/package.json`).version;
const TIMEOUT_MS = Number(process.env.DORM_CLIENT_TIMEOUT_MS || 10000);
const QUIET_MS = 300;
const EVENTS = ['last_data', 'message', 'action', 'join_room', 'leave_room'];
const RFC3339_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const sockets = [];
function fail(msg) {
  console.error(`dorm-client: FAIL (EIO=${eio}, socket.io-client ${clientVersion}): ${msg}`);
  for (const s of sockets) s.close();
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

function check(cond, msg) {
  if (!cond) fail(msg);
}

function sameKeys(obj, keys, what) {
  check(obj !== null && typeof obj === 'object' && !Array.isArray(obj),
    `${what} is not an object: ${JSON.stringify(obj)}`);
  const got = Object.keys(obj).sort();
  const want = [...keys].sort();
  check(JSON.stringify(got) === JSON.stringify(want),
    `${what} has keys ${JSON.stringify(got)}, expected ${JSON.stringify(want)}: ${JSON.stringify(obj)}`);
}

function isTime(v) {
  return typeof v === 'string' && RFC3339_UTC_MS.test(v) && !Number.isNaN(Date.parse(v));
}

// One client with a mailbox per event name (socket.io-client 2 has no onAny).
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
  for (const event of EVENTS) {
    socket.on(event, (...args) => {
      if (args.length !== 1) fail(`${name} got ${event} with ${args.length} arguments`);
      const w = waiters.get(event).shift();
      if (w) w(args[0]);
      else boxes.get(event).push(args[0]);
    });
  }
  socket.on('connect_error', (err) => fail(`${name} connect_error: ${err && err.message}`));
  socket.on('error', (err) => fail(`${name} error: ${err && (err.message || err)}`));
  socket.on('disconnect', (reason) => {
    if (!done) fail(`${name} disconnected: ${reason}`);
  });
  return {
    name,
    socket,
    connected: new Promise((resolve) => socket.on('connect', resolve)),
    next(event) {
      const box = boxes.get(event);
      if (box.length) return Promise.resolve(box.shift());
      return new Promise((resolve) => waiters.get(event).push(resolve));
    },
    pending() {
      const out = {};
      for (const [event, box] of boxes) if (box.length) out[event] = box;
      return out;
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

let done = false;

function checkLastData(data, who, token) {
  sameKeys(data, ['current_user_data', 'room_data', 'roommates_data'], `${who} last_data`);
  sameKeys(data.current_user_data, ['user_id', 'username'], `${who} current_user_data`);
  sameKeys(data.room_data,
    ['room_id', 'room_name', 'owner_id', 'room_size', 'count', 'create_time', 'notice'],
    `${who} room_data`);
  const room = data.room_data;
  check([2, 4].includes(room.room_size), `room_size ${room.room_size}`);
  check(isTime(room.create_time), `create_time ${room.create_time}`);
  check(Array.isArray(data.roommates_data), 'roommates_data is not an array');
  check(room.count === data.roommates_data.length,
    `count ${room.count} != ${data.roommates_data.length} roommates`);
  for (const m of data.roommates_data) {
    sameKeys(m, ['username', 'user_id', 'action', 'join_time'], `${who} roommate`);
    check(isTime(m.join_time), `join_time ${m.join_time}`);
    check(m.action === null || /^0[0-9]$/.test(m.action), `roommate action ${m.action}`);
  }
  const last = data.roommates_data[data.roommates_data.length - 1];
  check(last.user_id === data.current_user_data.user_id, `${who} is not the last roommate`);
  check(!JSON.stringify(data).includes(token), `${who} last_data leaks a token`);
}

function checkBroadcast(data, who, kind, fields) {
  sameKeys(data, ['user_id', kind, 'time'], `${who} ${kind}`);
  for (const [k, v] of Object.entries(fields)) {
    check(data[k] === v, `${who} ${kind}.${k} = ${JSON.stringify(data[k])}, expected ${JSON.stringify(v)}`);
  }
  check(isTime(data.time), `${who} ${kind}.time ${data.time}`);
}

async function main() {
  const a = client('A', ['polling']);
  const b = client('B', ['websocket']);
  await Promise.all([a.connected, b.connected]);

  a.socket.emit('join_room', { token: tokenA });
  const lastA = await a.next('last_data');
  checkLastData(lastA, 'A', tokenA);
  check(lastA.room_data.count === 1, `A joined an empty room but count is ${lastA.room_data.count}`);
  const userA = lastA.current_user_data.user_id;

  b.socket.emit('join_room', { token: tokenB });
  const lastB = await b.next('last_data');
  checkLastData(lastB, 'B', tokenB);
  const userB = lastB.current_user_data.user_id;
  check(userA !== userB, 'A and B are the same user');
  check(lastB.room_data.room_id === lastA.room_data.room_id, 'A and B are in different rooms');
  check(lastB.room_data.count === 2, `count after B joined is ${lastB.room_data.count}`);
  check(JSON.stringify(lastB.roommates_data.map((m) => m.user_id)) === JSON.stringify([userA, userB]),
    `roommates not in join order: ${JSON.stringify(lastB.roommates_data)}`);

  const text = `hello from ${userA} over EIO${eio} ✓`;
  a.socket.emit('message', { token: tokenA, message: text });
  const [msgA, msgB] = await Promise.all([a.next('message'), b.next('message')]);
  checkBroadcast(msgA, 'A', 'message', { user_id: userA, message: text });
  checkBroadcast(msgB, 'B', 'message', { user_id: userA, message: text });

  a.socket.emit('action', { token: tokenA, action: '05' });
  const [actA, actB] = await Promise.all([a.next('action'), b.next('action')]);
  checkBroadcast(actA, 'A', 'action', { user_id: userA, action: '05' });
  checkBroadcast(actB, 'B', 'action', { user_id: userA, action: '05' });

  a.socket.emit('action', { token: tokenA, action: '10' });
  const err = await a.next('action');
  sameKeys(err, ['error'], 'A action error');
  check(typeof err.error === 'string' && err.error.length > 0, 'empty error reason');

  await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
  check(Object.keys(a.pending()).length === 0, `A got unexpected events ${JSON.stringify(a.pending())}`);
  check(Object.keys(b.pending()).length === 0, `B got unexpected events ${JSON.stringify(b.pending())}`);

  const summary = {
    ok: true,
    eio,
    client: `socket.io-client@${clientVersion}`,
    engine_protocol: { a: a.engineProtocol(), b: b.engineProtocol() },
    transports: { a: a.transport(), b: b.transport() },
    room_id: lastB.room_data.room_id,
    user_ids: { a: userA, b: userB },
    count_after_joins: lastB.room_data.count,
    message: { received_by: ['a', 'b'], text: msgB.message, time: msgB.time },
    action: { received_by: ['a', 'b'], action: actB.action },
    action_error: err.error,
  };
  done = true;
  console.log(JSON.stringify(summary));
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
