// The 50-node scale test runs on its own, after the rest of the suite (npm test): its 50
// node processes take both cores for minutes, and tests beside it would time out.
export default {
  files: ['dist/test/scale.test.js'],
  timeout: '25m',
  workerThreads: false
}
