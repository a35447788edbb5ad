// runProbe/probeBinary against a scripted fake loader (node -e), so the helper
// itself is tested without needing a built probe.
import { describe, expect, it } from 'vitest';
import { FrameKind, encodeFrame } from './frames.js';
import { probeBinary, runProbe, type RunProbeOptions } from './probe.js';

const FAKE = String.raw`
const mode = process.argv[1];
const out = (s) => process.stdout.write(s);
const err = (s) => process.stderr.write(s);
switch (mode) {
  case 'events': {
    err('loading 3 programs\n');
    err('attached: ready\n');
    let n = 0;
    const t = setInterval(() => {
      n++;
      const line = JSON.stringify({ seq: n, comm: 'fake', bytes: n * 100 }) + '\n';
      out(line.slice(0, 5)); // split a line across writes
      setTimeout(() => out(line.slice(5)), 2);
    }, 20);
    process.on('SIGINT', () => {
      clearInterval(t);
      setTimeout(() => { err('detached after ' + n + ' events\n'); process.exit(0); }, 10);
    });
    break;
  }
  case 'already':
    err('program already loaded\n');
    process.exitCode = 3;
    break;
  case 'badjson':
    out('{"ok":1}\nnot json\n[1,2]\n');
    break;
  case 'hang':
    process.on('SIGINT', () => err('ignoring SIGINT\n'));
    err('ready\n');
    setInterval(() => {}, 1000);
    break;
  case 'frames':
  case 'truncframes': {
    const buf = Buffer.from(process.argv[2], 'hex');
    const end = mode === 'frames' ? buf.length : buf.length - 2;
    out(buf.subarray(0, 3));
    setTimeout(() => out(buf.subarray(3, end)), 5);
    break;
  }
  case 'silent':
    setTimeout(() => {}, 3000);
    break;
}
`;

const fake = (mode: string, extra: string[] = [], opts: RunProbeOptions = {}) =>
  runProbe(`fake-${mode}`, ['-e', FAKE, mode, ...extra], { bin: process.execPath, ...opts });

describe('runProbe', () => {
  it('waits for ready, collects JSON events, stops with SIGINT', async () => {
    const run = fake('events', [], { waitReady: true });
    await run.ready;
    expect(run.stderr()).toContain('attached: ready');
    const third = await run.waitForEvent((e) => e.seq === 3, 5000);
    expect(third).toEqual({ seq: 3, comm: 'fake', bytes: 300 });

    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(res.signal).toBeNull();
    expect(res.events.length).toBeGreaterThanOrEqual(3);
    expect(res.events.map((e) => e.seq)).toEqual(res.events.map((_, i) => i + 1));
    expect(res.stderr).toMatch(new RegExp(`detached after ${res.events.length} events`));
    expect(run.exited).toBe(true);
  });

  it('"already" is not "ready": ready rejects with the exit code and stderr', async () => {
    const run = fake('already', [], { waitReady: true });
    await expect(run.ready).rejects.toThrow(/exited \(code 3, signal null\) before printing "ready"[\s\S]*program already loaded/);
    const res = await run;
    expect(res.code).toBe(3);
    expect(res.events).toEqual([]);
  });

  it('fails the run on stdout lines that are not JSON objects', async () => {
    await expect(fake('badjson')).rejects.toThrow(/2 stdout line\(s\) are not JSON objects[\s\S]*not json[\s\S]*\[1,2\]/);
  });

  it('times out waiting for ready with a clear error', async () => {
    const run = fake('silent', [], { waitReady: true, readyTimeoutMs: 300 });
    await expect(run.ready).rejects.toThrow(/no "ready" on stderr within 300 ms[\s\S]*--- fake-silent stderr ---\n\(empty\)/);
    await run.kill();
    expect(run.exited).toBe(true);
  });

  it('stop() escalates to SIGKILL and fails when SIGINT is ignored', async () => {
    const run = fake('hang', [], { waitReady: true, stopTimeoutMs: 400 });
    await run.ready;
    await expect(run.stop()).rejects.toThrow(/did not exit within 400 ms of SIGINT, killed[\s\S]*ignoring SIGINT/);
    expect(run.exited).toBe(true);
    expect((await run).signal).toBe('SIGKILL');
  });

  it('kills a run that exceeds timeoutMs', async () => {
    await expect(fake('hang', [], { timeoutMs: 500 })).rejects.toThrow(/still running after 500 ms, killed/);
  });

  it('decodes machine-mode frames from stdout', async () => {
    const stream = Buffer.concat([
      encodeFrame(FrameKind.Hello, 0, '{"probe":"fake"}'),
      encodeFrame(FrameKind.Event, 7, Buffer.from([1, 2, 3])),
    ]);
    const res = await fake('frames', [stream.toString('hex')], { stdout: 'frames' });
    expect(res.frames.map((f) => [f.kind, f.flags, f.payload.toString('hex')])).toEqual([
      [3, 0, Buffer.from('{"probe":"fake"}').toString('hex')],
      [1, 7, '010203'],
    ]);
    expect(res.stdout.equals(stream)).toBe(true);
  });

  it('fails on a machine-mode stream that ends mid-frame', async () => {
    const stream = encodeFrame(FrameKind.Stats, 0, '{"events":1}');
    await expect(fake('truncframes', [stream.toString('hex')], { stdout: 'frames' })).rejects.toThrow(
      /bad machine-mode stream: stream ended inside a frame at offset 0 \(kind 2\)/,
    );
  });

  it('reports a loader that cannot start', async () => {
    const run = runProbe('nope', [], { bin: '/nonexistent/loader', waitReady: true });
    await expect(run).rejects.toThrow(/failed to start: spawn \/nonexistent\/loader ENOENT/);
    await expect(run.ready).rejects.toThrow(/failed to start/);
  });
});

describe('probeBinary', () => {
  it('points at bpf/out/<arch>/<probe> and says how to build it when missing', () => {
    expect(() => probeBinary('no-such-probe', 'arm64')).toThrow(
      /bpf\/out\/arm64\/no-such-probe not found: run `make -C bpf ARCH=arm64` first/,
    );
    expect(() => probeBinary('../etc/passwd')).toThrow(/invalid probe name/);
  });
});
