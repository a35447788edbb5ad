import { describe, expect, it } from 'vitest';
import { bootAppend, chooseTransport, guestControllerAddress, guestMqttUrl, qemuArgs } from './qemu-board.js';
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

  it('turns a loopback broker into the QEMU host alias and refuses mqtts:// for emulated boards', () => {
    expect(guestMqttUrl('mqtt://127.0.0.1:18830')).toBe('mqtt://10.0.2.2:18830');
    expect(guestMqttUrl('mqtt://localhost:1883/')).toBe('mqtt://10.0.2.2:1883');
    expect(guestMqttUrl('mqtt://broker.lan:1883')).toBe('mqtt://broker.lan:1883');
    expect(() => guestMqttUrl('mqtts://127.0.0.1:8883')).toThrow(/mqtt:\/\/ only/);
    expect(() => guestMqttUrl('tcp://127.0.0.1:1883')).toThrow(/expected mqtt:\/\/HOST:PORT/);
  });

  it('chooses the transport: the flag over the profile, --mqtt implies mqtt, the broker defaults to the controller host', () => {
    const grpcProfile = loadProfile('qemu-dayu200');
    const mqttProfile = { ...grpcProfile, transport: 'mqtt' as const };
    const ctl = '127.0.0.1:17474';
    expect(chooseTransport(grpcProfile, { controller: ctl })).toEqual({ transport: 'grpc' });
    expect(chooseTransport(mqttProfile, { controller: ctl })).toEqual({ transport: 'mqtt', mqtt: 'mqtt://127.0.0.1:1883' });
    expect(chooseTransport(mqttProfile, { controller: ctl, transport: 'grpc' })).toEqual({ transport: 'grpc' });
    expect(chooseTransport(grpcProfile, { controller: ctl, transport: 'mqtt' })).toEqual({ transport: 'mqtt', mqtt: 'mqtt://127.0.0.1:1883' });
    expect(chooseTransport(grpcProfile, { controller: ctl, mqtt: 'mqtt://127.0.0.1:11883' })).toEqual({ transport: 'mqtt', mqtt: 'mqtt://127.0.0.1:11883' });
    expect(chooseTransport(grpcProfile, { controller: '192.168.7.1:7474', transport: 'mqtt' }).mqtt).toBe('mqtt://192.168.7.1:1883');
    expect(() => chooseTransport(grpcProfile, { controller: ctl, transport: 'grpc', mqtt: 'mqtt://h:1' })).toThrow(/--mqtt mqtt:\/\/h:1 is for --transport mqtt/);
    expect(() => chooseTransport(grpcProfile, { controller: ctl, transport: 'quic' })).toThrow(/--transport quic: expected grpc or mqtt/);
    expect(() => chooseTransport(grpcProfile, { controller: ctl, mqtt: 'broker:1883' })).toThrow(/expected mqtt:\/\/HOST:PORT/);
  });

  it('puts the transport on the kernel command line for image/init.sh, as the guest addresses it', () => {
    const p = loadProfile('qemu-dayu200');
    const words = (a: string) => a.split(' ');
    const g = bootAppend(p, { name: 'b-1', controller: '127.0.0.1:17474', token: 'tok' });
    expect(g.transport).toBe('grpc');
    expect(words(g.append)).toEqual(expect.arrayContaining(['bpfleet.controller=10.0.2.2:17474', 'bpfleet.transport=grpc', 'bpfleet.token=tok', 'bpfleet.board=qemu-dayu200']));
    expect(g.append).not.toContain('bpfleet.mqtt=');
    const m = bootAppend(p, { name: 'b-1', controller: '127.0.0.1:17474', transport: 'mqtt', mqtt: 'mqtt://127.0.0.1:18830' });
    expect(m).toMatchObject({ transport: 'mqtt', mqtt: 'mqtt://10.0.2.2:18830', controller: '10.0.2.2:17474' });
    expect(words(m.append)).toEqual(expect.arrayContaining(['bpfleet.controller=10.0.2.2:17474', 'bpfleet.transport=mqtt', 'bpfleet.mqtt=mqtt://10.0.2.2:18830']));
    // The profile's transport is the default; mqtt without a broker, or a broker for gRPC, is an error.
    expect(() => bootAppend({ ...p, transport: 'mqtt' }, { name: 'b-1', controller: '127.0.0.1:17474' })).toThrow(/transport mqtt needs the broker URL/);
    expect(() => bootAppend(p, { name: 'b-1', controller: '127.0.0.1:1', mqtt: 'mqtt://127.0.0.1:2' })).toThrow(/is for transport mqtt/);
    expect(() => bootAppend(p, { name: 'b-1', controller: '127.0.0.1:1', transport: 'mqtt', mqtt: 'mqtt://a b:1' })).toThrow();
  });

  it('passes several node flags as one comma-joined word and refuses unsafe ones', () => {
    const p = loadProfile('qemu-dayu200');
    const g = bootAppend(p, { name: 'b-1', controller: '127.0.0.1:17474', nodeOptions: ['--max-semi-space-size=1', '--single-threaded-gc'] });
    expect(g.append.split(' ')).toContain('bpfleet.node_options=--max-semi-space-size=1,--single-threaded-gc');
    expect(() => bootAppend(p, { name: 'b-1', controller: '127.0.0.1:1', nodeOptions: ['--a;reboot'] })).toThrow(/node option/);
  });
});
