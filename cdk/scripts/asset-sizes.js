#!/usr/bin/env node
// Prints the size of every Lambda function's code asset in a cloud assembly (cdk.out),
// nested stage assemblies included: unpacked bytes and the deflated size Lambda stores.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

function templates(dir) {
  const out = [];
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name.endsWith('.template.json')) out.push(p);
    else if (name.startsWith('assembly-') && fs.statSync(p).isDirectory()) out.push(...templates(p));
  }
  return out;
}

function sizes(p) {
  const st = fs.statSync(p);
  if (st.isFile()) {
    return { raw: st.size, zipped: zlib.deflateRawSync(fs.readFileSync(p), { level: 9 }).length };
  }
  let raw = 0;
  let zipped = 0;
  for (const name of fs.readdirSync(p)) {
    const s = sizes(path.join(p, name));
    raw += s.raw;
    zipped += s.zipped;
  }
  return { raw, zipped };
}

const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`;
const root = process.argv[2] ?? 'cdk.out';
const rows = [];
for (const file of templates(root)) {
  const template = JSON.parse(fs.readFileSync(file, 'utf8'));
  // The asset manifest beside the template maps an S3 key's hash to the staged directory.
  const manifestFile = file.replace(/\.template\.json$/, '.assets.json');
  const files = fs.existsSync(manifestFile) ? JSON.parse(fs.readFileSync(manifestFile, 'utf8')).files ?? {} : {};
  for (const [id, res] of Object.entries(template.Resources ?? {})) {
    if (res.Type !== 'AWS::Lambda::Function') continue;
    const key = res.Properties?.Code?.S3Key;
    const asset = typeof key === 'string' ? files[key.replace(/\.zip$/, '')] : undefined;
    if (asset === undefined || asset.source?.packaging !== 'zip') continue;
    const where = path.join(path.dirname(file), asset.source.path);
    if (!fs.existsSync(where)) continue;
    const s = sizes(where);
    const name = res.Metadata?.['aws:cdk:path'] ?? `${path.basename(file, '.template.json')}/${id}`;
    rows.push(`${name.padEnd(70)} ${mib(s.raw).padStart(10)} unpacked ${mib(s.zipped).padStart(10)} zipped`);
  }
}
if (rows.length === 0) {
  console.error(`asset-sizes: no bundled function assets under ${root}`);
  process.exit(1);
}
console.log(rows.join('\n'));
