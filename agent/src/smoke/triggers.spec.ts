import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { KNOWN_TRIGGERS, makeTrigger } from './triggers.js';

describe('smoke triggers', () => {
  it('knows tcp_loopback, process_activity and page_touch, nothing else', () => {
    expect(KNOWN_TRIGGERS).toEqual(['tcp_loopback', 'process_activity', 'page_touch']);
    expect(makeTrigger('toString')).toBeUndefined();
    expect(makeTrigger('fork_bomb')).toBeUndefined();
  });

  it('page_touch: this process faults in at least one page per 4 KiB touched', async () => {
    const t = makeTrigger('page_touch')!;
    const vars = await t.prepare();
    expect(vars).toEqual({ pid: process.pid, bytes: 8 << 20, pages: 2048 });
    const minflt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[7]);
    const before = minflt();
    await t.fire();
    expect(minflt() - before).toBeGreaterThanOrEqual(2048);
    await t.close();
  });

  it('tcp_loopback: a listening port before the loader starts, an echoed exchange when fired, nothing left after close', async () => {
    const t = makeTrigger('tcp_loopback')!;
    const vars = await t.prepare();
    expect(vars).toEqual({ port: expect.any(Number), pid: process.pid, bytes: 4096 });
    await t.fire();
    await t.close();
    const refused = await new Promise<string>((resolve) => {
      const s = connect(Number(vars['port']), '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve('connected'); });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('process_activity: the child exists (its pid for --pid) before firing and has exited 0 after', async () => {
    const t = makeTrigger('process_activity')!;
    const vars = await t.prepare();
    expect(existsSync(`/proc/${vars['pid']}`)).toBe(true);
    await t.fire();
    expect(existsSync(`/proc/${vars['pid']}`)).toBe(false);
    await t.close();
  });

  it('fire before prepare says so', async () => {
    await expect(makeTrigger('tcp_loopback')!.fire()).rejects.toThrow(/fire\(\) before prepare\(\)/);
    await expect(makeTrigger('process_activity')!.fire()).rejects.toThrow(/fire\(\) before prepare\(\)/);
  });
});
