'use strict';
// Artillery processor for bench/vs-artillery.sh, voice workload (seed 003: plain WebSocket,
// md5-signed JSON frames), run by Artillery's own `ws` engine. The engine opens the
// connection (`connect: ws://…/?sid={{ token }}`); every frame this file sends is built and
// signed here, as a voice client must:
//   sign = md5 of PHP's json_encode($frame, JSON_UNESCAPED_UNICODE) of the frame without
//   `sign`, its top-level keys sorted (`phpJson` below: `/` escaped as `\/`, U+2028/U+2029
//   escaped, non-ASCII raw, an empty object as `[]`; integers only, no floats).
// The reference server refuses a frame with a wrong sign with an error frame, counted here
// as voice.error: a run with no errors proves the signing right.
//
//   - `listen` waits for the server's `create_token` (the `online_token` every frame carries),
//     counts the client's own `enter_room` confirmation (voice.joined), times every
//     `send_topic_msg` notice from its stamp (histogram voice.fanout, ms: the same quantity as
//     roomrig's `send_topic_msg.fanout`; the sender gets no copy of its own), answers
//     `exit_room` with a signed `exit_room_report` as the seed's client does, and pings every
//     15 s (the seed's interval, which the server advertises; the server closes a connection
//     silent for 20 s);
//   - `enterRoom` enters the user's channel `room{room}`; `barrier`, `spread` as in dorm.js;
//   - `sendTopic` stamps and sends one 64-byte public-screen message (voice.sent) and records
//     its lateness against the client's 1-per-second schedule (voice.send_lateness);
//   - `finish` stops the pings before the engine closes the connection.

const crypto = require('crypto');

// The server's first frame (`create_token`) can arrive before the engine runs the first flow
// step: Artillery's ws engine hands the open connection to the flow one tick after `ws` has
// started reading. So every connection of the engine's `ws` module keeps the online_token of
// the first `create_token` it emits, for `listen` to find.
const WebSocket = require(require.resolve('ws', {
  paths: [require.resolve('@artilleryio/int-core/lib/engine_ws.js')],
}));
const emit = WebSocket.prototype.emit;
WebSocket.prototype.emit = function (event, ...args) {
  if (event === 'message' && this.voiceOnlineToken === undefined) {
    try {
      const m = JSON.parse(String(args[0]));
      if (m && m.action === 'create_token') this.voiceOnlineToken = m.online_token;
    } catch (e) {
      // not JSON: `listen` counts it
    }
  }
  return emit.call(this, event, ...args);
};

const PERIOD_MS = 1000;
const TEXT_BYTES = 64; // roomrig's `send_topic_msg: { size: 64 }`
const FORGET_MS = 20000;
const PING_MS = 15000;
const TOKEN_WAIT_MS = 10000;

const CLIENTS = Number(process.env.BENCH_CLIENTS || 0);
const HOLD_MS = Number(process.env.BENCH_HOLD_S || 0) * 1000;
const BARRIER_MS = Number(process.env.BENCH_BARRIER_S || 600) * 1000;

const sentAt = new Map(); // message text -> time of the stamp (ms)
let seq = 0;
let joined = 0;
let allJoinedAt;
let barrierTimer;
const waiting = [];

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

// PHP's json_encode(…, JSON_UNESCAPED_UNICODE) for the values a client sends.
function phpString(s) {
  return JSON.stringify(s)
    .replace(/\//g, '\\/')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function phpJson(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return '[' + v.map(phpJson).join(',') + ']';
  switch (typeof v) {
    case 'string':
      return phpString(v);
    case 'boolean':
      return String(v);
    case 'number':
      if (!Number.isInteger(v)) throw new Error('voice.js signs integers only');
      return String(v);
    case 'object': {
      const keys = Object.keys(v);
      if (keys.length === 0) return '[]';
      return '{' + keys.map((k) => phpString(k) + ':' + phpJson(v[k])).join(',') + '}';
    }
    default:
      throw new Error(`cannot sign a ${typeof v}`);
  }
}

// The frame `action` with `fields`, its envelope and its sign, as text.
function signed(vars, action, fields) {
  const frame = {
    action,
    sid: vars.token,
    online_token: vars.onlineToken,
    timestamp: Math.floor(Date.now() / 1000),
    ...fields,
  };
  const sorted = {};
  for (const k of Object.keys(frame).sort()) sorted[k] = frame[k];
  frame.sign = crypto.createHash('md5').update(phpJson(sorted), 'utf8').digest('hex');
  return JSON.stringify(frame);
}

function send(context, events, action, fields) {
  if (context.ws.readyState !== 1) return;
  context.ws.send(signed(context.vars, action, fields));
}

function listen(context, events, done) {
  const ws = context.ws;
  const vars = context.vars;
  if (barrierTimer === undefined) {
    barrierTimer = setTimeout(release, BARRIER_MS);
  }
  let ready = false;
  const start = () => {
    ready = true;
    clearTimeout(tokenWait);
    vars.onlineToken = ws.voiceOnlineToken;
    vars.pinger = setInterval(() => send(context, events, 'ping', {}), PING_MS);
    done();
  };
  const tokenWait = setTimeout(() => {
    if (!ready) {
      events.emit('counter', 'voice.error', 1);
      done(new Error('no create_token from the server'));
    }
  }, TOKEN_WAIT_MS);
  ws.on('message', (data) => {
    let m;
    try {
      m = JSON.parse(data.toString());
    } catch (e) {
      events.emit('counter', 'voice.error', 1);
      return;
    }
    if (m.error_code !== undefined && m.error_code !== 0) {
      events.emit('counter', 'voice.error', 1);
      return;
    }
    switch (m.action) {
      case 'create_token':
        if (!ready) start();
        break;
      case 'enter_room':
        if (String(m.user_id) === String(vars.user_id)) {
          events.emit('counter', 'voice.joined', 1);
          joined += 1;
          if (joined === CLIENTS) release();
        }
        break;
      case 'send_topic_msg': {
        events.emit('counter', 'voice.received', 1);
        const t0 = sentAt.get(m.content);
        if (t0 === undefined) {
          events.emit('counter', 'voice.unmatched', 1);
        } else {
          events.emit('histogram', 'voice.fanout', nowMs() - t0);
        }
        break;
      }
      case 'exit_room':
        send(context, events, 'exit_room_report', { user_id: m.user_id });
        break;
      default:
    }
  });
  ws.on('close', () => clearInterval(vars.pinger));
  if (ws.voiceOnlineToken !== undefined) start();
}

function enterRoom(context, events, done) {
  send(context, events, 'enter_room', { channel_name: `room${context.vars.room}` });
  done();
}

function release() {
  if (allJoinedAt !== undefined) return;
  allJoinedAt = nowMs();
  clearTimeout(barrierTimer);
  waiting.splice(0).forEach((go) => go());
}

function barrier(context, events, done) {
  const go = () => setTimeout(done, Math.max(0, allJoinedAt + HOLD_MS - nowMs()));
  if (allJoinedAt !== undefined || !CLIENTS) {
    if (allJoinedAt === undefined) allJoinedAt = nowMs();
    return go();
  }
  waiting.push(go);
}

function spread(context, events, done) {
  setTimeout(done, Math.random() * PERIOD_MS);
}

function sendTopic(context, events, done) {
  const now = nowMs();
  const vars = context.vars;
  if (vars.firstSend === undefined) {
    vars.firstSend = now;
    vars.sends = 0;
  }
  events.emit('histogram', 'voice.send_lateness', Math.max(0, now - (vars.firstSend + vars.sends * PERIOD_MS)));
  vars.sends += 1;
  seq += 1;
  const head = `${vars.token}:${seq}:`;
  const text = head + 'x'.repeat(Math.max(0, TEXT_BYTES - head.length));
  sentAt.set(text, now);
  send(context, events, 'send_topic_msg', { channel_name: `room${vars.room}`, content: text });
  events.emit('counter', 'voice.sent', 1);
  if (seq % 1024 === 0) {
    for (const [t, at] of sentAt) {
      if (now - at < FORGET_MS) break;
      sentAt.delete(t);
    }
  }
  return done();
}

function finish(context, events, done) {
  clearInterval(context.vars.pinger);
  done();
}

module.exports = { listen, enterRoom, barrier, spread, sendTopic, finish, phpJson, signed };
