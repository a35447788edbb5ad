// Prints "N passed, N failed, N skipped" from a junit report; exits 1 if the report is missing
// or ran no test, so an empty run is never mistaken for a green one.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let xml;
try {
  xml = readFileSync(file, 'utf8');
} catch (err) {
  console.error(`test-summary: no junit report at ${file}: ${err.message}`);
  process.exit(1);
}
const cases = xml.match(/<testcase\b[^>]*?(\/>|>[\s\S]*?<\/testcase>)/g) ?? [];
let failed = 0, skipped = 0;
for (const c of cases) {
  if (/<(failure|error)\b/.test(c)) failed++;
  else if (/<skipped\b/.test(c)) skipped++;
}
const passed = cases.length - failed - skipped;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(cases.length === 0 || failed > 0 ? 1 : 0);
