// Tests that run on their own, after the rest of the suite (npm test), one file at a time:
// - the 50-node scale test takes both cores for minutes, and tests beside it would time out;
// - the detection test holds the default failure detector to its bounds, which measures the
//   machine rather than origin when docker builds and containers run beside it (CI saw a
//   live node declared dead there);
// - the docker tests (a dockerd of their own, image builds, containers) load the machine
//   more than any other, so they do not run beside timing-sensitive ones; the lease tests
//   (etcd, redis-server, up to four nodes, iptables partitions) are both;
// - the spec evaluation CPU test keeps every CPU busy on purpose (stress-ng).
export default {
  files: ['dist/test/scale.test.js', 'dist/test/detection.test.js', 'dist/test/containers.test.js', 'dist/test/build.test.js', 'dist/test/lease.test.js', 'dist/test/unit/spec-eval-cpu.test.js'],
  concurrency: 1,
  timeout: '35m',
  workerThreads: false
}
