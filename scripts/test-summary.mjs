// Prints "N passed, N failed, N skipped" over the junit reports given (one per vitest
// project); exits 1 if one is missing or nothing ran, so an empty run is never taken for green.
import { readFileSync } from 'node:fs';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('test-summary: no junit reports given');
  process.exit(1);
}
const cases = [];
for (const file of files) {
  let xml;
  try {
    xml = readFileSync(file, 'utf8');
  } catch (err) {
    console.error(`test-summary: no junit report at ${file}: ${err.message}`);
    process.exit(1);
  }
  cases.push(...(xml.match(/<testcase\b[^>]*?(\/>|>[\s\S]*?<\/testcase>)/g) ?? []));
}
let failed = 0, skipped = 0;
for (const c of cases) {
  if (/<(failure|error)\b/.test(c)) failed++;
  else if (/<skipped\b/.test(c)) skipped++;
}
const passed = cases.length - failed - skipped;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(cases.length === 0 || failed > 0 ? 1 : 0);
