// A bare socket.io server of one release, for roomrig's generation detection tests:
//   node server.js 2|4|4-eio3 [PING_INTERVAL_MS PING_TIMEOUT_MS]
// 2: socket.io 2.5.0 (Engine.IO 3 only); 4: socket.io 4.8.1 (Engine.IO 4 only);
// 4-eio3: socket.io 4.8.1 with allowEIO3. Prints `listening on http://127.0.0.1:PORT`.
const http = require('http').createServer();
const [which, interval, timeout] = process.argv.slice(2);
const heartbeat = interval ? { pingInterval: +interval, pingTimeout: +timeout } : {};
const io = which === '2'
  ? require('socket.io-v2')(http, heartbeat)
  : require('socket.io')(http, { allowEIO3: which === '4-eio3', ...heartbeat });
io.on('connection', () => {});
http.listen(0, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${http.address().port}`);
});
