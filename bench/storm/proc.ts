/**
 * CPU time of processes the benchmark did not write (Azurite, the emulator's PowerShell pool),
 * read from Linux's /proc. Elsewhere the figures are absent (null), not guessed.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: Linux reports utime/stime in these ticks; 100 on every mainstream kernel config. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** utime + stime, ms. */
  readonly cpuMs: number;
}

function stat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (![ppid, utime, stime].every(Number.isFinite)) return null;
    return { pid, ppid, cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

function allStats(): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  return names.filter((n) => /^\d+$/.test(n)).flatMap((n) => stat(Number(n)) ?? []);
}

/** Every live descendant of `pid` (children, their children, …). */
export function descendants(pid: number): number[] {
  const stats = allStats();
  const found: number[] = [];
  let frontier = [pid];
  while (frontier.length > 0) {
    const parents = new Set(frontier);
    frontier = stats.filter((s) => parents.has(s.ppid)).map((s) => s.pid);
    found.push(...frontier);
  }
  return found;
}

/** The children of `pid` whose arguments include `args` in that order, next to each other. */
export function childrenWithArgs(pid: number, args: readonly string[]): number[] {
  return allStats()
    .filter((s) => s.ppid === pid)
    .map((s) => s.pid)
    .filter((child) => {
      try {
        const argv = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
        return argv.some((_, at) => args.every((arg, i) => argv[at + i] === arg));
      } catch {
        return false;
      }
    });
}

/** User + system CPU of the processes still alive, ms; null when /proc cannot say for any. */
export function cpuMsOf(pids: readonly number[]): number | null {
  const found = pids.flatMap((pid) => stat(pid) ?? []);
  if (pids.length > 0 && found.length === 0) return null;
  return found.reduce((total, s) => total + s.cpuMs, 0);
}

/** Peak resident set (VmHWM) in KiB; null when /proc cannot say. */
export function peakRssKbOf(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}
