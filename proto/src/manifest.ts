// Probe manifests (bpf/README.md, "The manifest") and decoding of the fixed-size records they
// describe. Agent, controller and tests decode records through this one implementation.

export interface ManifestField {
  name: string;
  type: 'u8' | 'u16' | 'u32' | 'u64' | 's32' | 's64' | 'comm' | 'addr' | 'str';
  offset: number;
  size: number;
  format: 'plain' | 'family' | 'tcp_state' | 'hex' | 'ktime_ns';
  unit: string;
  description: string;
}

/** One condition a smoke-test record must meet; values may hold {port}, {pid}, {bytes}. */
export interface ManifestSmokeExpect {
  field: string;
  op: 'eq' | 'ge';
  value: string;
}

/** The probe's on-device smoke test (bpf/README.md, "Smoke tests"). */
export interface ManifestSmoke {
  /** What the agent does to make the probe fire: "tcp_loopback". */
  trigger: string;
  /** Loader arguments that isolate the trigger, with placeholders. */
  args: string[];
  /** A record passes when every condition holds. */
  expect: ManifestSmokeExpect[];
  description: string;
}

export interface Manifest {
  schema: string;
  probe: string;
  version: string;
  kind: 'stream' | 'interval';
  record: { name: string; size: number; endian: 'little'; fields: ManifestField[] };
  hooks: { group: string; program: string; kind: string; target: string }[];
  /** Absent in loaders built before smoke tests existed. */
  smoke?: ManifestSmoke;
}

const TCP_STATES = [
  'UNKNOWN', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'BOUND_INACTIVE',
];

function formatAddr(buf: Buffer, family: number): string {
  if (family === 10) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
    // Compress the longest run of zero groups, as inet_ntop does.
    let best = -1, bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== '0') { i++; continue; }
      let j = i;
      while (j < 8 && groups[j] === '0') j++;
      if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
      i = j;
    }
    if (best < 0) return groups.join(':');
    return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  }
  return `${buf[0]}.${buf[1]}.${buf[2]}.${buf[3]}`;
}

/**
 * Decodes one machine-mode record with the manifest, into the same shape the loader's --json
 * mode prints (so tests can compare the two paths).
 */
export function decodeRecord(m: Manifest, rec: Buffer): Record<string, unknown> {
  if (rec.length !== m.record.size) throw new Error(`record of ${rec.length} bytes, manifest says ${m.record.size}`);
  const famField = m.record.fields.find((f) => f.format === 'family');
  const family = famField ? rec.readUInt16LE(famField.offset) : 2;
  const out: Record<string, unknown> = {};
  for (const f of m.record.fields) {
    const at = rec.subarray(f.offset, f.offset + f.size);
    let v: unknown;
    switch (f.type) {
      case 'comm': { const nul = at.indexOf(0); v = at.subarray(0, nul < 0 ? at.length : nul).toString('latin1'); break; }
      case 'addr': v = formatAddr(at, family); break;
      // str: UTF-8 text, NUL-terminated unless it fills the field (folded stacks)
      case 'str': { const nul = at.indexOf(0); v = at.subarray(0, nul < 0 ? at.length : nul).toString('utf8'); break; }
      case 'u8': v = at.readUInt8(0); break;
      case 'u16': v = at.readUInt16LE(0); break;
      case 'u32': v = at.readUInt32LE(0); break;
      case 's32': v = at.readInt32LE(0); break;
      case 's64': v = Number(at.readBigInt64LE(0)); break;
      case 'u64': v = f.format === 'hex' ? at.readBigUInt64LE(0) : Number(at.readBigUInt64LE(0)); break;
    }
    if (f.format === 'family') v = v === 10 ? 'IPv6' : v === 2 ? 'IPv4' : '?';
    else if (f.format === 'tcp_state') v = TCP_STATES[v as number] ?? 'UNKNOWN';
    else if (f.format === 'hex') v = `0x${(v as bigint | number).toString(16)}`;
    out[f.name] = v;
  }
  return out;
}
