// CPU time and peak RSS of live processes, read from /proc the way `ps` does: user+system ticks of
// /proc/<pid>/stat (fields 14 and 15) and VmHWM of /proc/<pid>/status.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks: number | undefined;

/** sysconf(_SC_CLK_TCK): the unit of /proc/<pid>/stat times (100 on every Linux we run on). */
function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/** User + system CPU seconds the process has used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: split after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14 -> f[11], stime field 15 -> f[12]
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** Peak resident set size (VmHWM) in MiB; undefined once the process is gone. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Direct children of pid, over all its threads (Node spawns from any of them). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

export function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export interface CpuSplit { user: number; sys: number }

/**
 * User and system CPU seconds per thread of a process, by name (comm); the thread whose id is the
 * pid is called "main" (Node leaves its libuv pool and V8 helper threads named "node" too).
 */
export function threadCpu(pid: number): Map<string, CpuSplit> {
  const out = new Map<string, CpuSplit>();
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // Node names none of its threads: tell the main thread (tid = pid) from the others
    const name = Number(t) === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const prev = out.get(name) ?? { user: 0, sys: 0 };
    out.set(name, { user: prev.user + Number(f[11]) / ticksPerSecond(), sys: prev.sys + Number(f[12]) / ticksPerSecond() });
  }
  return out;
}

/** b - a, per thread name (threads that ended in between are missing from b: their time is lost). */
export function threadCpuDelta(a: Map<string, CpuSplit>, b: Map<string, CpuSplit>): Map<string, CpuSplit> {
  const out = new Map<string, CpuSplit>();
  for (const [k, v] of b) {
    const p = a.get(k) ?? { user: 0, sys: 0 };
    out.set(k, { user: v.user - p.user, sys: v.sys - p.sys });
  }
  return out;
}

/** read(2)- and write(2)-class system calls the process has made (/proc/<pid>/io syscr, syscw). */
export function syscalls(pid: number): { reads: number; writes: number } | undefined {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return { reads: Number(/^syscr: (\d+)$/m.exec(io)?.[1]), writes: Number(/^syscw: (\d+)$/m.exec(io)?.[1]) };
  } catch {
    return undefined;
  }
}
