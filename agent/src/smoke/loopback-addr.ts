// An address of 127/8 for one smoke run: every 127/8 address is local on lo (no setup, nothing to
// clean up), and one picked at random from 127.64.0.0-127.191.255.255 is used by nobody else
// (services sit on 127.0.0.1, 127.0.0.53, 127.0.1.1), so a probe's filter or blocklist on it
// touches only the trigger's packets.
export function randomLoopbackAddr(rand: () => number = Math.random): string {
  const n = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  return `127.${n(64, 191)}.${n(0, 255)}.${n(1, 254)}`;
}
