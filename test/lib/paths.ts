import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Absolute path of the repository root (two levels above test/lib). */
export const repoRoot: string = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/** Absolute path of the integration test project (`test/`). */
export const testRoot: string = path.join(repoRoot, 'test');

/** Absolute path of `test/fixtures`. */
export const fixturesDir: string = path.join(testRoot, 'fixtures');

/** Where compiled fixture helpers go (git-ignored). */
export const fixturesBinDir: string = path.join(fixturesDir, '.bin');

/** Root of the probe build output: `bpf/out/<arch>/<probe>`. */
export const bpfOutDir: string = path.join(repoRoot, 'bpf', 'out');
