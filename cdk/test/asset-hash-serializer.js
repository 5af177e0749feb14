// Snapshot serializer: asset hashes and this checkout's absolute path change with the Rust
// code, the machine and the folder, not with the infrastructure. Replace them so snapshots
// only change when a stack does.
'use strict';
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const HASH = /[0-9a-f]{64}/g;
const HAS_HASH = /[0-9a-f]{64}/;

module.exports = {
  test(val) {
    return typeof val === 'string' && (HAS_HASH.test(val) || val.includes(REPO));
  },
  serialize(val, config, indentation, depth, refs, printer) {
    const normalized = val.replace(HASH, '<asset-hash>').split(REPO).join('<repo>');
    return printer(normalized, config, indentation, depth, refs);
  },
};
