// Snapshot serializer: asset hashes (and what derives from them) and this checkout's absolute
// path change with the machine (is cargo-lambda installed? it changes the bundling image, which
// is hashed) and the folder, not with the infrastructure. Replace them so snapshots only change
// when a stack does.
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
    const normalized = val
      .replace(HASH, '<asset-hash>')
      // CDK Pipelines names an asset's publishing destination `<account>-<region>-<8 hex of the
      // asset>`: as volatile as the hash itself.
      .replace(/(<asset-hash>:\d{12}-[a-z0-9-]+?)-[0-9a-f]{8}\b/g, '$1-<destination>')
      .split(REPO).join('<repo>');
    return printer(normalized, config, indentation, depth, refs);
  },
};
