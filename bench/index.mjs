// npm run bench: the decoder hot path (bench/decoder.mjs), then the relay
// suite (bench/relays.mjs, writes bench/RESULTS.md). Not part of the tests.
// WSTAP_BENCH_QUICK=1: 2 runs of 1 s per scenario and relay (for development).
console.log('== frame decoder ==');
await import('./decoder.mjs');
console.log('');
console.log('== relays (issue 7) ==');
await import('./relays.mjs');
