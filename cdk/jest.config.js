/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.tsx?$': 'ts-jest' },
  snapshotSerializers: ['<rootDir>/test/asset-hash-serializer.js'],
  // Synthesizing four stacks with cdk-nag takes a while on a shared 2-core machine.
  testTimeout: 120000,
};
