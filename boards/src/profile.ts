// Board profiles: boards/profiles/<name>.json, one declarative file per board (real or emulated),
// validated here so a typo in a profile fails with the file, the field and what is allowed.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROFILES_DIR = fileURLToPath(new URL('../profiles', import.meta.url));

/** Architecture names as the probes use them (bpf/out/<arch>). */
export type BoardArch = 'arm64' | 'arm' | 'x86_64';

export type Access =
  /** An emulated board: QEMU `-M <machine>` booting a kernel from toolchains/kernels.conf. */
  | { kind: 'qemu'; machine: string; kernel: string; smp: number }
  /** A board reachable over ssh (user@host; empty host = give it with --ssh). */
  | { kind: 'ssh'; host: string; port: number; user?: string }
  /** An OpenHarmony board behind `hdc` (target = serial number, empty = the only one connected). */
  | { kind: 'hdc'; target: string; alt?: Access };

export interface BoardProfile {
  name: string;
  description: string;
  arch: BoardArch;
  cpu: string;
  memoryMiB: number;
  kernel: {
    /** `uname -r` (an exact release for emulated boards, the series for real ones). */
    release: string;
    /** present: /sys/kernel/btf/vmlinux; shipped: the probes carry a minimized BTF; none: neither. */
    btf: 'present' | 'shipped' | 'none';
    kprobes: boolean;
    /** Kernel options a stock kernel lacks and the probes need. */
    requiredConfig?: string[];
    notes?: string;
  };
  userland: { os: 'openharmony' | 'debian' | 'busybox'; libc: 'musl' | 'glibc' | 'none' };
  access: Access;
  /** Where the agent runtime lives on the device. */
  installDir: string;
  transport: 'grpc' | 'mqtt';
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

type Obj = Record<string, unknown>;

class Checker {
  constructor(private readonly where: string) {}
  fail(field: string, want: string, got: unknown): never {
    throw new ProfileError(`${this.where}: field "${field}" ${want}, got ${JSON.stringify(got)}`);
  }
  obj(o: Obj, field: string): Obj {
    const v = o[field.split('.').pop()!];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'must be an object', v);
    return v as Obj;
  }
  str(o: Obj, field: string, opts: { empty?: boolean; pattern?: RegExp } = {}): string {
    const v = o[field.split('.').pop()!];
    if (typeof v !== 'string' || (!opts.empty && v === '')) this.fail(field, 'must be a non-empty string', v);
    if (opts.pattern && v !== '' && !opts.pattern.test(v)) this.fail(field, `must match ${opts.pattern}`, v);
    return v;
  }
  oneOf<T extends string>(o: Obj, field: string, allowed: readonly T[]): T {
    const v = o[field.split('.').pop()!];
    if (!allowed.includes(v as T)) this.fail(field, `must be one of ${allowed.join(', ')}`, v);
    return v as T;
  }
  int(o: Obj, field: string, min: number, max: number): number {
    const v = o[field.split('.').pop()!];
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) this.fail(field, `must be an integer in ${min}..${max}`, v);
    return v as number;
  }
  bool(o: Obj, field: string): boolean {
    const v = o[field.split('.').pop()!];
    if (typeof v !== 'boolean') this.fail(field, 'must be true or false', v);
    return v;
  }
  unknownKeys(o: Obj, prefix: string, known: string[]): void {
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) throw new ProfileError(`${this.where}: unknown field "${prefix}${k}" (known: ${known.join(', ')})`);
    }
  }
}

function parseAccess(c: Checker, o: Obj, field: string): Access {
  const kind = c.oneOf(o, `${field}.kind`, ['qemu', 'ssh', 'hdc'] as const);
  switch (kind) {
    case 'qemu':
      c.unknownKeys(o, `${field}.`, ['kind', 'machine', 'kernel', 'smp']);
      return { kind, machine: c.str(o, `${field}.machine`), kernel: c.str(o, `${field}.kernel`, { pattern: /^[a-z0-9.-]+$/ }), smp: c.int(o, `${field}.smp`, 1, 8) };
    case 'ssh': {
      c.unknownKeys(o, `${field}.`, ['kind', 'host', 'port', 'user']);
      const user = o['user'] === undefined ? undefined : c.str(o, `${field}.user`);
      return { kind, host: c.str(o, `${field}.host`, { empty: true }), port: c.int(o, `${field}.port`, 1, 65535), ...(user ? { user } : {}) };
    }
    case 'hdc': {
      c.unknownKeys(o, `${field}.`, ['kind', 'target', 'alt']);
      const alt = o['alt'] === undefined ? undefined : parseAccess(c, c.obj(o, `${field}.alt`), `${field}.alt`);
      if (alt?.kind === 'hdc') c.fail(`${field}.alt.kind`, 'must differ from hdc', 'hdc');
      return { kind, target: c.str(o, `${field}.target`, { empty: true }), ...(alt ? { alt } : {}) };
    }
  }
}

/** Validates a parsed profile; `where` names it in errors (a file path). */
export function parseProfile(raw: unknown, where: string): BoardProfile {
  const c = new Checker(where);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ProfileError(`${where}: a profile must be a JSON object`);
  const o = raw as Obj;
  c.unknownKeys(o, '', ['name', 'description', 'arch', 'cpu', 'memoryMiB', 'kernel', 'userland', 'access', 'installDir', 'transport']);
  const k = c.obj(o, 'kernel');
  c.unknownKeys(k, 'kernel.', ['release', 'btf', 'kprobes', 'requiredConfig', 'notes']);
  const u = c.obj(o, 'userland');
  c.unknownKeys(u, 'userland.', ['os', 'libc']);
  let requiredConfig: string[] | undefined;
  if (k['requiredConfig'] !== undefined) {
    const rc = k['requiredConfig'];
    if (!Array.isArray(rc) || !rc.every((x) => typeof x === 'string' && /^CONFIG_[A-Z0-9_]+=[ym]$/.test(x))) {
      c.fail('kernel.requiredConfig', 'must be a list of "CONFIG_X=y" strings', rc);
    }
    requiredConfig = rc as string[];
  }
  const profile: BoardProfile = {
    name: c.str(o, 'name', { pattern: /^[a-z0-9][a-z0-9.-]*$/ }),
    description: c.str(o, 'description'),
    arch: c.oneOf(o, 'arch', ['arm64', 'arm', 'x86_64'] as const),
    cpu: c.str(o, 'cpu'),
    memoryMiB: c.int(o, 'memoryMiB', 64, 65536),
    kernel: {
      release: c.str(k, 'kernel.release'),
      btf: c.oneOf(k, 'kernel.btf', ['present', 'shipped', 'none'] as const),
      kprobes: c.bool(k, 'kernel.kprobes'),
      ...(requiredConfig ? { requiredConfig } : {}),
      ...(k['notes'] !== undefined ? { notes: c.str(k, 'kernel.notes') } : {}),
    },
    userland: { os: c.oneOf(u, 'userland.os', ['openharmony', 'debian', 'busybox'] as const), libc: c.oneOf(u, 'userland.libc', ['musl', 'glibc', 'none'] as const) },
    access: parseAccess(c, c.obj(o, 'access'), 'access'),
    installDir: c.str(o, 'installDir', { pattern: /^\/[A-Za-z0-9._/-]+$/ }),
    transport: c.oneOf(o, 'transport', ['grpc', 'mqtt'] as const),
  };
  return profile;
}

/** Reads and validates one profile file. */
export function readProfileFile(file: string): BoardProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ProfileError(`${file}: ${(err as Error).message}`, { cause: err });
  }
  const p = parseProfile(raw, file);
  const base = path.basename(file, '.json');
  if (p.name !== base) throw new ProfileError(`${file}: field "name" must equal the file name "${base}", got "${p.name}"`);
  return p;
}

/** Every profile in `dir`, sorted by name. */
export function listProfiles(dir = PROFILES_DIR): BoardProfile[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => readProfileFile(path.join(dir, f)));
}

/** The profile called `name`; the error lists the known ones. */
export function loadProfile(name: string, dir = PROFILES_DIR): BoardProfile {
  const all = listProfiles(dir);
  const p = all.find((x) => x.name === name);
  if (!p) throw new ProfileError(`unknown board profile "${name}"; known: ${all.map((x) => x.name).join(', ')} (files in ${dir})`);
  return p;
}
