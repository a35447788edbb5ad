// `bpfleet board image <profile>`: a bootable initramfs for an emulated board. Debian's kernel
// and its virtio modules (toolchains/kernels.sh caches them), busybox-static for the arch, the
// agent runtime (runtime.ts), the probe loaders of bpf/out/<arch>, and boards/image/init.sh.
// Cached under ${BPFLEET_CACHE}/images/<profile>/<key>/, key = hash of every input.
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, cacheRoot, debArch, noProgress, run, sha256, sha256File, withLock, type Progress } from './host.js';
import type { BoardProfile } from './profile.js';
import { ensureRuntime, type Runtime } from './runtime.js';

const IMAGE_DIR = path.join(REPO_ROOT, 'boards', 'image');
/** virtio-mmio transport, the NIC QEMU user networking talks to, and an RNG so node's getrandom() never waits. */
export const BOARD_MODULES = ['virtio_mmio', 'virtio_net', 'virtio_rng'];

export interface KernelInfo {
  name: string;
  dir: string;
  release: string;
  vmlinuz: string;
  debArch: string;
}

export interface BoardImage {
  profile: string;
  arch: string;
  key: string;
  dir: string;
  initrd: string;
  kernel: KernelInfo;
  runtime: Runtime;
  initrdBytes: number;
  cached: boolean;
}

/** The cached kernel (and busybox) of an emulated profile; fetched by toolchains/kernels.sh if missing. */
export async function ensureKernel(profile: BoardProfile, env: NodeJS.ProcessEnv = process.env): Promise<{ kernel: KernelInfo; busybox: string }> {
  if (profile.access.kind !== 'qemu') throw new Error(`profile ${profile.name} is a real board (access: ${profile.access.kind}); only qemu profiles have an image`);
  const kdir = path.join(cacheRoot(env), 'kernels');
  const dir = path.join(kdir, profile.access.kernel);
  const da = debArch(profile.arch);
  const busybox = path.join(kdir, '_busybox', da, 'busybox');
  if (!existsSync(path.join(dir, '.stamp')) || !existsSync(busybox)) {
    await run('bash', [path.join(REPO_ROOT, 'toolchains', 'kernels.sh')], { env });
  }
  if (!existsSync(path.join(dir, '.stamp'))) throw new Error(`kernel "${profile.access.kernel}" of profile ${profile.name} is not in toolchains/kernels.conf`);
  const [, , karch] = readFileSync(path.join(dir, 'package'), 'utf8').trim().split(/\s+/);
  if (karch !== da) throw new Error(`profile ${profile.name}: kernel ${profile.access.kernel} is ${karch}, the profile's arch ${profile.arch} needs ${da}`);
  const release = readFileSync(path.join(dir, 'release'), 'utf8').trim();
  return { kernel: { name: profile.access.kernel, dir, release, vmlinuz: path.join(dir, 'vmlinuz'), debArch: da }, busybox };
}

/** Module files for `names` and everything they depend on (modinfo "depends="), load order first. */
export function resolveModules(modulesDir: string, names: string[]): string[] {
  const byName = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz)?$/.test(e.name)) byName.set(e.name.replace(/\.ko(\.xz)?$/, '').replace(/-/g, '_'), p);
    }
  };
  walk(path.join(modulesDir, 'kernel'));
  const order: string[] = [];
  const seen = new Set<string>();
  const builtinFile = path.join(modulesDir, 'modules.builtin');
  const builtin = new Set(existsSync(builtinFile)
    ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map((l) => path.basename(l).replace(/\.ko$/, '').replace(/-/g, '_'))
    : []);
  const visit = (raw: string): void => {
    const m = raw.replace(/-/g, '_');
    if (seen.has(m)) return;
    seen.add(m);
    const f = byName.get(m);
    if (!f) {
      if (builtin.has(m)) return; // built into this kernel
      throw new Error(`kernel module ${m} not found under ${modulesDir}`);
    }
    if (f.endsWith('.xz')) throw new Error(`compressed module ${f}: not supported (busybox insmod)`);
    const text = readFileSync(f).toString('latin1');
    const dep = /depends=([^\0]*)\0/.exec(text)?.[1] ?? '';
    for (const d of dep.split(',').filter(Boolean)) visit(d);
    order.push(f);
  };
  for (const n of names) visit(n);
  return order;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** The loaders, their manifests and shipped BTF of bpf/out/<arch> (not the object files). */
function probeFiles(arch: string): string[] {
  const dir = path.join(REPO_ROOT, 'bpf', 'out', arch);
  if (!existsSync(dir)) throw new Error(`no probes in ${dir}: build them with make -C bpf ARCH=${arch}`);
  const files = listFiles(dir).filter((f) => !path.relative(dir, f).startsWith('obj/'));
  if (!files.some((f) => f.endsWith('.manifest.json'))) throw new Error(`no probes in ${dir}: build them with make -C bpf ARCH=${arch}`);
  return files;
}

export function imagesRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheRoot(env), 'images');
}

/** Builds (or finds cached) the image of an emulated profile. */
export async function buildImage(profile: BoardProfile, opts: { env?: NodeJS.ProcessEnv; progress?: Progress } = {}): Promise<BoardImage> {
  const env = opts.env ?? process.env;
  const progress = opts.progress ?? noProgress;
  progress('kernel and busybox', 0);
  const { kernel, busybox } = await ensureKernel(profile, env);
  const runtime = await ensureRuntime(profile.arch, { env, progress: (s, f) => progress(`runtime ${profile.arch}: ${s}`, 0.05 + (f ?? 0) * 0.55) });
  progress('hashing inputs', 0.6);
  return withLock(path.join(imagesRoot(env), `.${profile.name}.lock`), () => assemble(profile, kernel, busybox, runtime, env, progress));
}

async function assemble(profile: BoardProfile, kernel: KernelInfo, busybox: string, runtime: Runtime, env: NodeJS.ProcessEnv, progress: Progress): Promise<BoardImage> {
  const modules = resolveModules(path.join(kernel.dir, 'modules'), BOARD_MODULES);
  const probesDir = path.join(REPO_ROOT, 'bpf', 'out', profile.arch);
  const probes = probeFiles(profile.arch);
  const initSh = readFileSync(path.join(IMAGE_DIR, 'init.sh'));
  const dhcp = readFileSync(path.join(IMAGE_DIR, 'udhcpc.script'));
  const parts: string[] = ['image-v2', profile.arch, readFileSync(path.join(kernel.dir, '.stamp'), 'utf8'), await sha256File(busybox), runtime.key, initSh.toString(), dhcp.toString()];
  for (const m of modules) parts.push(path.relative(kernel.dir, m));
  for (const p of probes) parts.push(path.relative(probesDir, p), await sha256File(p));
  const key = sha256(...parts).slice(0, 16);
  const dir = path.join(imagesRoot(env), profile.name, key);
  const initrd = path.join(dir, 'initrd.cpio.gz');
  const result = (cached: boolean): BoardImage => ({ profile: profile.name, arch: profile.arch, key, dir, initrd, kernel, runtime, initrdBytes: statSync(initrd).size, cached });
  if (existsSync(initrd)) {
    progress('cached', 1);
    return result(true);
  }

  progress('staging the root file system', 0.65);
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const root = path.join(tmp, 'root');
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'run', 'etc', 'root', 'bpfleet', 'var/lib', 'opt/bpfleet/probes']) mkdirSync(path.join(root, d), { recursive: true });
  copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  writeFileSync(path.join(root, 'init'), initSh, { mode: 0o755 });
  writeFileSync(path.join(root, 'bpfleet', 'udhcpc.script'), dhcp, { mode: 0o755 });
  const modLines: string[] = [];
  for (const m of modules) {
    const rel = path.relative(path.join(kernel.dir, 'modules'), m);
    const dst = path.join(root, 'lib', 'modules', kernel.release, rel);
    mkdirSync(path.dirname(dst), { recursive: true });
    copyFileSync(m, dst);
    modLines.push(`/lib/modules/${kernel.release}/${rel}`);
  }
  writeFileSync(path.join(root, 'bpfleet', 'modules'), modLines.join('\n') + '\n');
  cpSync(runtime.dir, path.join(root, 'opt', 'bpfleet'), { recursive: true, verbatimSymlinks: true, filter: (s) => path.basename(s) !== '.stamp' });
  for (const p of probes) {
    const dst = path.join(root, 'opt', 'bpfleet', 'probes', path.relative(probesDir, p));
    mkdirSync(path.dirname(dst), { recursive: true });
    copyFileSync(p, dst);
    if (statSync(p).mode & 0o111) chmodSync(dst, 0o755);
  }
  writeFileSync(path.join(root, 'bpfleet', 'image.json'), JSON.stringify({ profile: profile.name, key, kernel: kernel.release }) + '\n');

  progress('packing the initramfs (cpio, gzip)', 0.75);
  await run('bash', ['-c', 'set -o pipefail; cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --quiet -o -0 -H newc -R 0:0 | gzip -1 >"$2"', 'pack', root, path.join(tmp, 'initrd.cpio.gz')]);
  rmSync(root, { recursive: true, force: true });
  writeFileSync(path.join(tmp, 'image.json'), JSON.stringify({
    profile: profile.name, arch: profile.arch, key, kernel: kernel.name, release: kernel.release, runtime: runtime.key,
    modules: modules.map((m) => path.basename(m)), probes: probes.map((p) => path.relative(probesDir, p)),
  }, null, 2) + '\n');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.dirname(dir), { recursive: true });
  renameSync(tmp, dir);
  pruneImages(path.dirname(dir), 3);
  progress('built', 1);
  return result(false);
}

/** Keeps the `keep` newest images of a profile (QEMU reads the initrd at start, so running boards are unaffected). */
function pruneImages(profileDir: string, keep: number): void {
  const dirs = readdirSync(profileDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.endsWith('.tmp'))
    .map((e) => ({ p: path.join(profileDir, e.name), t: statSync(path.join(profileDir, e.name)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const d of dirs.slice(keep)) rmSync(d.p, { recursive: true, force: true });
}
