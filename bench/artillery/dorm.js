'use strict';
// Artillery processor for bench/vs-artillery.sh: the measurements Artillery's socketio engine
// cannot make on the dorm protocol. Its `response` mode times a reply only when the whole
// payload equals `response.data` (dorm's broadcast carries the server's `time`, so it never
// matches and the step ends at `config.timeout`), and the reference server sends no acks.
//
// The emits themselves stay Artillery's own `emit` steps; this file only
//   - listens for `last_data` (counter dorm.joined), `message` broadcasts (dorm.received) and
//     error replies (dorm.error);
//   - stamps each message with a unique text before its emit step and records, for every
//     member that receives the broadcast (sender included), the time from the stamp to the
//     receipt: histogram dorm.fanout (ms), the same quantity as roomrig's raw
//     `message.fanout`. This needs sender and receivers in one process: on this 2-core box
//     Artillery runs one worker thread; a receipt from another worker counts as
//     dorm.unmatched;
//   - holds every client at a barrier until all BENCH_CLIENTS clients have joined, then
//     BENCH_HOLD_S seconds more (function `barrier`): Artillery arrives more slowly than its
//     phases ask for when they are fast, and a fixed `think` would let the first clients leave
//     before the last ones arrive. BENCH_BARRIER_S bounds the wait if some never join;
//   - records how late each send is against the client's own 1-per-second schedule
//     (histogram dorm.send_lateness, ms from its first send + k seconds), as roomrig's
//     `send.lateness`: Artillery's `think` is closed-loop, so a busy event loop stretches it.

const PERIOD_MS = 1000;
const TEXT_BYTES = 64; // roomrig's `message: { size: 64 }`
const FORGET_MS = 20000; // stamps older than this are dropped (rooms with absent members)

const CLIENTS = Number(process.env.BENCH_CLIENTS || 0);
const HOLD_MS = Number(process.env.BENCH_HOLD_S || 0) * 1000;
const BARRIER_MS = Number(process.env.BENCH_BARRIER_S || 600) * 1000;

const sentAt = new Map(); // message text -> time of the stamp (ms)
let seq = 0;
let joined = 0;
let allJoinedAt; // when the last client joined (or the barrier timed out)
let barrierTimer;
const waiting = [];

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

function listen(context, events, done) {
  const socket = context.sockets && context.sockets[''];
  if (!socket) {
    return done(new Error('no socket.io connection'));
  }
  if (barrierTimer === undefined) {
    barrierTimer = setTimeout(release, BARRIER_MS);
  }
  socket.on('last_data', () => {
    events.emit('counter', 'dorm.joined', 1);
    joined += 1;
    if (joined === CLIENTS) release();
  });
  socket.on('join_room', () => events.emit('counter', 'dorm.error', 1));
  socket.on('message', (m) => {
    if (m && m.error !== undefined) {
      events.emit('counter', 'dorm.error', 1);
      return;
    }
    events.emit('counter', 'dorm.received', 1);
    const t0 = m ? sentAt.get(m.message) : undefined;
    if (t0 === undefined) {
      events.emit('counter', 'dorm.unmatched', 1);
    } else {
      events.emit('histogram', 'dorm.fanout', nowMs() - t0);
    }
  });
  return done();
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

// A random pause below one period, so the clients' sends spread over the second.
function spread(context, events, done) {
  setTimeout(done, Math.random() * PERIOD_MS);
}

function stamp(context, events, done) {
  const now = nowMs();
  const vars = context.vars;
  if (vars.firstSend === undefined) {
    vars.firstSend = now;
    vars.sends = 0;
  }
  events.emit('histogram', 'dorm.send_lateness', Math.max(0, now - (vars.firstSend + vars.sends * PERIOD_MS)));
  vars.sends += 1;
  seq += 1;
  const head = `${vars.token}:${seq}:`;
  vars.text = head + 'x'.repeat(Math.max(0, TEXT_BYTES - head.length));
  sentAt.set(vars.text, now);
  events.emit('counter', 'dorm.sent', 1);
  if (seq % 1024 === 0) {
    for (const [text, t] of sentAt) {
      if (now - t < FORGET_MS) break;
      sentAt.delete(text);
    }
  }
  return done();
}

module.exports = { listen, barrier, spread, stamp };
