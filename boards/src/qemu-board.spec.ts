import { describe, expect, it } from 'vitest';
import { guestControllerAddress, qemuArgs } from './qemu-board.js';
import type { BoardImage } from './image.js';
import { loadProfile } from './profile.js';

describe('emulated boards', () => {
  it('dials the host loopback through the QEMU user-network alias', () => {
    expect(guestControllerAddress('127.0.0.1:7474')).toBe('10.0.2.2:7474');
    expect(guestControllerAddress('localhost:17474')).toBe('10.0.2.2:17474');
    expect(guestControllerAddress('192.168.1.20:7474')).toBe('192.168.1.20:7474');
    expect(() => guestControllerAddress('7474')).toThrow(/expected HOST:PORT/);
  });

  it('boots the profile machine, cpu and memory with a virtio NIC and RNG', () => {
    const img = { initrd: '/i/initrd.cpio.gz', kernel: { vmlinuz: '/k/vmlinuz' } } as BoardImage;
    const a = qemuArgs(loadProfile('qemu-hi3516'), img, 'console=ttyAMA0', '/c.log');
    const opt = (k: string) => a[a.indexOf(k) + 1];
    expect([opt('-M'), opt('-cpu'), opt('-m'), opt('-kernel'), opt('-initrd'), opt('-serial')])
      .toEqual(['virt,highmem=off', 'cortex-a7', '1024', '/k/vmlinuz', '/i/initrd.cpio.gz', 'file:/c.log']);
    expect(a.join(' ')).toContain('virtio-net-device,netdev=net0');
    expect(a.join(' ')).toContain('virtio-rng-device');
    expect(() => qemuArgs(loadProfile('dayu200'), img, '', '/c.log')).toThrow(/not an emulated board/);
  });
});
