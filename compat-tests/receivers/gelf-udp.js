// A GELF receiver for the gelf log driver's tests: graygelf's server (npm,
// installed by contrib/setup.sh into target/tools/node) on 127.0.0.1, UDP
// port argv[2]. It takes plain, zlib, gzip and chunked messages as Graylog
// does; each message it assembles is printed as one line of JSON, and
// "listening" goes to stderr once it is bound.
const server = require('graygelf/server')();
server.on('message', (msg) => process.stdout.write(JSON.stringify(msg) + '\n'));
server.on('error', (err) => {
  process.stderr.write(`gelf-udp: ${err}\n`);
  process.exit(1);
});
server.listen(Number(process.argv[2]), '127.0.0.1');
server._udp.on('listening', () => process.stderr.write('listening\n'));
