// The `current` and `previous` symlinks of a probe's install directory. Each points at a
// version directory by its bare name and is only ever replaced by rename(2), so whoever
// resolves it sees the old complete version or the new complete version, never neither.
import { randomBytes } from 'node:crypto';
import { readlink, rename, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from './version-dir.js';

export type ProbeLink = 'current' | 'previous';

/** The version a link names, or null when there is no link. */
export async function readProbeLink(probeDir: string, link: ProbeLink): Promise<string | null> {
  try {
    return await readlink(join(probeDir, link));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Atomically points `link` at `version`: symlink under a temporary name, then rename over it. */
export async function setProbeLink(probeDir: string, link: ProbeLink, version: string): Promise<void> {
  const tmp = join(probeDir, `.link-${randomBytes(6).toString('hex')}`);
  await symlink(version, tmp);
  try {
    await rename(tmp, join(probeDir, link));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(probeDir);
}
