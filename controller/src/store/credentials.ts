// Enrollment tokens and device credentials: random secrets, stored only as sha256 hashes.
//
// Why sha256 and not scrypt: scrypt (or argon2) makes guessing a low-entropy password slow. These
// secrets are 32 random bytes, 2^256 possibilities, so nothing can be guessed whatever the hash
// speed, and a stolen database still yields no usable credential. A slow hash would only cost
// us: after a controller restart 1,000 agents reconnect at once, and scrypt at ~50 ms each would
// block the event loop for ~50 s on a 2-core machine.
import { createHash, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** 32 random bytes, base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Device ids: "d-" and 16 hex digits; never contains '/', so stream ids stay parseable. */
export function newDeviceId(): string {
  return `d-${randomBytes(8).toString('hex')}`;
}

/**
 * The credential as Mosquitto's password_file stores it ("$7$": PBKDF2-SHA512, 101 iterations,
 * 12-byte salt, as `mosquitto_passwd` writes it), so an external broker can check devices'
 * MQTT logins (username = device id, password = credential). Made at enrollment, the only time
 * the credential is known in clear.
 */
export function mosquittoPasswordHash(secret: string, salt: Buffer = randomBytes(12), iterations = 101): string {
  const hash = pbkdf2Sync(secret, salt, iterations, 64, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}
