// Which C library the userland uses: decides nothing for the static loaders, but matters for
// anything dynamic the board runs, and tells OpenHarmony (musl) from Debian-ish boards.

export type Libc = 'glibc' | 'musl' | 'bionic' | 'unknown';

export interface LibcEvidence {
  /** process.report header glibcVersionRuntime: set only when Node runs on glibc. */
  glibcVersionRuntime?: string;
  /** process.report sharedObjects: the libraries loaded into this process. */
  sharedObjects?: readonly string[];
  /** Names present in /lib (ld-musl-arm.so.1, ld-linux-armhf.so.3, ...). */
  libEntries?: readonly string[];
  /** /system/bin/linker exists (Android). */
  androidLinker?: boolean;
}

export function classifyLibc(e: LibcEvidence): Libc {
  if (e.glibcVersionRuntime) return 'glibc';
  const loaded = e.sharedObjects ?? [];
  if (loaded.some((s) => /ld-musl-|libc\.musl-/.test(s))) return 'musl';
  if (loaded.some((s) => /\/libc\.so\.6$/.test(s))) return 'glibc';
  if (e.androidLinker) return 'bionic';
  const lib = e.libEntries ?? [];
  if (lib.some((n) => n.startsWith('ld-musl-'))) return 'musl';
  if (lib.some((n) => /^ld-linux.*\.so\.\d$/.test(n) || n === 'libc.so.6')) return 'glibc';
  return 'unknown';
}
