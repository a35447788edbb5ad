import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withLock } from './host.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('build lock', () => {
  it('lets concurrent builders take turns', async () => {
    const order: string[] = [];
    const job = (n: string) => withLock(path.join(dir, 'a.lock'), async () => {
      order.push(`${n} in`);
      await new Promise((r) => setTimeout(r, 50));
      order.push(`${n} out`);
    });
    await Promise.all([job('1'), job('2')]);
    expect(order).toEqual(['1 in', '1 out', '2 in', '2 out']);
    expect(existsSync(path.join(dir, 'a.lock'))).toBe(false);
  });

  it('takes over a lock whose owner is gone', async () => {
    const lock = path.join(dir, 'b.lock');
    mkdirSync(lock);
    writeFileSync(path.join(lock, 'pid'), '999999999');
    expect(await withLock(lock, async () => 'ran')).toBe('ran');
  });
});
