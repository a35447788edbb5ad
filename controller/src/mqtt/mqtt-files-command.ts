// `bpfleet mqtt-files`: writes the password_file and acl_file an external Mosquitto needs to
// serve bpfleet devices and controllers (docs/MQTT.md). Reads the store directly (SQLite in WAL
// mode: safe next to a running controller); run it again after enrolling devices and send the
// broker SIGHUP to reload.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import { CliError } from '../cli/admin-client.js';
import { str, type Command } from '../cli/command.js';
import { defaultDataDir } from '../main/index.js';
import { mosquittoPasswordHash } from '../store/credentials.js';
import { openStore } from '../store/index.js';
import { mosquittoAclText, mosquittoPasswdText } from './mosquitto-files.js';

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export const mqttFilesCommand: Command = {
  name: 'mqtt-files',
  summary: 'write Mosquitto password and ACL files for the enrolled devices',
  help: `Usage: bpfleet mqtt-files --out DIR [--data-dir DIR | --store FILE]
                         [--controller-user NAME --controller-password-file F]

  --out DIR                  writes DIR/passwd (password_file) and DIR/acl (acl_file)
  --data-dir DIR / --store F the controller's database (default as bpfleet controller)
  --controller-user NAME     the controllers' login (default bpfleet-controller) ...
  --controller-password-file F  ... and its password; without it no controller line is written
Devices log in with username = device id, password = their credential; devices enrolled before
this bpfleet version have no MQTT password: re-enroll them. Reload Mosquitto (SIGHUP) afterwards.`,
  options: {
    out: { type: 'string' }, 'data-dir': { type: 'string' }, store: { type: 'string' },
    'controller-user': { type: 'string' }, 'controller-password-file': { type: 'string' },
  },
  positionals: [0, 0],
  async run(ctx) {
    const v = ctx.values;
    const out = str(v, 'out');
    if (!out) throw new CliError('--out DIR is required', 2);
    const storePath = str(v, 'store') ?? path.join(str(v, 'data-dir') ?? defaultDataDir(), 'bpfleet.db');
    const user = str(v, 'controller-user') ?? 'bpfleet-controller';
    const pwFile = str(v, 'controller-password-file');
    let controllerPassword: string | undefined;
    if (pwFile) {
      try {
        controllerPassword = readFileSync(pwFile, 'utf8').trim();
      } catch (err) {
        throw new CliError(`--controller-password-file ${pwFile}: ${(err as Error).message}`, 2);
      }
    }
    let store;
    try {
      store = await openStore(storePath);
    } catch (err) {
      throw new CliError(`${(err as Error).message} (start the controller once with this --data-dir, or give --store FILE)`);
    }
    let rows;
    try {
      if (!store.mqttPasswordHashes) throw new CliError(`the store at ${storePath} keeps no MQTT passwords`);
      rows = await store.mqttPasswordHashes();
    } finally {
      await store.close();
    }
    const entries = rows.map((r) => ({ username: r.deviceId, hash: r.hash }));
    if (controllerPassword) entries.unshift({ username: user, hash: mosquittoPasswordHash(controllerPassword) });
    const { text, skipped } = mosquittoPasswdText(entries);
    mkdirSync(out, { recursive: true, mode: 0o700 });
    writeAtomic(path.join(out, 'passwd'), text);
    writeAtomic(path.join(out, 'acl'), mosquittoAclText([user]));
    const summary = { passwd: path.join(out, 'passwd'), acl: path.join(out, 'acl'), devices: rows.length - skipped.length,
      controller: controllerPassword ? user : null, skipped };
    if (v['json']) ctx.json(summary);
    else {
      ctx.out(`wrote ${summary.passwd} (${summary.devices} devices${controllerPassword ? ` and controller user ${user}` : ''}) and ${summary.acl}\n`);
      if (skipped.length > 0) ctx.err(`no MQTT password for ${skipped.length} devices enrolled before: re-enroll them (${skipped.join(', ')})\n`);
    }
    return 0;
  },
};
