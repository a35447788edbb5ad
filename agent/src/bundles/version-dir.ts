// Disk side of an install: writing a bundle's files into a fresh directory durably, and
// comparing a directory with a bundle file by file.
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BundleFile } from '@bpfleet/proto';

/** Writes `files` into the empty directory `dir` with their modes, fsyncing files and directories. */
export async function writeFiles(dir: string, files: readonly BundleFile[]): Promise<void> {
  const dirs = new Set<string>([dir]);
  for (const f of files) {
    const dest = join(dir, f.path);
    await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
    for (let d = dirname(dest); d.length > dir.length; d = dirname(d)) dirs.add(d);
    // 'wx': O_CREAT|O_EXCL never follows or reuses anything already there.
    const fh = await open(dest, 'wx', f.mode);
    try {
      await fh.writeFile(f.content);
      await fh.chmod(f.mode); // the umask may have removed bits
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  // Deepest first, so each directory's entry is durable in its parent after its own contents.
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await syncDir(d);
}

/** The first way `dir` differs from `files` (content, mode, file type, extra or missing files), or null. */
export async function diffAgainstDisk(dir: string, files: readonly Pick<BundleFile, 'path' | 'sha256' | 'mode'>[]): Promise<string | null> {
  for (const f of files) {
    const p = join(dir, f.path);
    const st = await lstat(p).catch(() => null);
    if (!st) return `${f.path} is missing`;
    if (!st.isFile()) return `${f.path} is not a regular file`;
    if ((st.mode & 0o7777) !== f.mode) return `${f.path} has mode ${(st.mode & 0o7777).toString(8)}, not ${f.mode.toString(8)}`;
    const sha = createHash('sha256').update(await readFile(p)).digest('hex');
    if (sha !== f.sha256) return `${f.path} has sha256 ${sha.slice(0, 16)}.., not ${f.sha256.slice(0, 16)}..`;
  }
  const expected = new Set(files.map((f) => f.path));
  for (const p of await listFiles(dir)) if (!expected.has(p)) return `${p} is not in the bundle`;
  return null;
}

/** Paths of everything but directories under `dir`, relative, '/'-separated. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(rel);
  }
  return out;
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
