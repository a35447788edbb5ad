// JSON text for columns holding protobuf-derived objects, whose uint64 fields are bigints.

/** JSON.stringify with bigints written as numbers when exact, else as decimal strings. */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v);
}

export function fromJsonText<T>(text: string | null | undefined, fallback: T): T {
  return text ? (JSON.parse(text) as T) : fallback;
}
