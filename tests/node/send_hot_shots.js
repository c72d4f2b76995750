// Sends a fixed set of DogStatsD metrics with hot-shots to 127.0.0.1:<port>, then exits.
const StatsD = require('hot-shots');

const port = Number(process.argv[2]);
const fail = (error) => { console.error(error); process.exit(1); };
const single = new StatsD({ host: '127.0.0.1', port, prefix: 'api.', errorHandler: fail });
// a buffering client packs several lines into one datagram
const buffered = new StatsD({ host: '127.0.0.1', port, prefix: 'api.', maxBufferSize: 1000,
                              bufferFlushInterval: 50, errorHandler: fail });

single.increment('requests', 2, ['country:US', 'device:mac']);
single.increment('requests', 1, ['country:MX']);
single.gauge('pool', 12, ['country:US']);
single.timing('latency', 30, ['country:US']);
single.histogram('size', 100, ['country:US']);
single.distribution('payload', 7);
single.set('users', 'ann', ['country:US']);
buffered.increment('requests', 4, ['country:MX']);
buffered.timing('latency', 50, ['country:MX']);
buffered.set('users', 'bob', ['country:MX']);
buffered.set('users', 'ann', ['country:MX']);

single.close((error) => {
  if (error) fail(error);
  buffered.close((again) => (again ? fail(again) : process.exit(0)));
});
