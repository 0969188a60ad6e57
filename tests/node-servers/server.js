// A bare socket.io server of one release, for roomrig's generation detection tests:
//   node server.js 2|4|4-eio3
// 2: socket.io 2.5.0 (Engine.IO 3 only); 4: socket.io 4.8.1 (Engine.IO 4 only);
// 4-eio3: socket.io 4.8.1 with allowEIO3. Prints `listening on http://127.0.0.1:PORT`.
const http = require('http').createServer();
const which = process.argv[2];
const io = which === '2'
  ? require('socket.io-v2')(http)
  : require('socket.io')(http, { allowEIO3: which === '4-eio3' });
io.on('connection', () => {});
http.listen(0, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${http.address().port}`);
});
