// Small tolerant file helpers for detection: a missing file is an answer, not an error. All
// paths go through a root so tests can point detection at a fixture tree.
import { readFileSync } from 'node:fs';
import { access, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';

export class HostFiles {
  constructor(readonly root = '/') {}

  path(abs: string): string {
    return path.join(this.root, abs);
  }

  async exists(abs: string): Promise<boolean> {
    try {
      await access(this.path(abs));
      return true;
    } catch {
      return false;
    }
  }

  async text(abs: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(abs), 'utf8');
    } catch {
      return undefined;
    }
  }

  /**
   * Synchronous read, for procfs files: generated in memory, so it costs less than readFile's
   * round trips through the libuv pool (open, stat, read, close), which wake a pool thread each.
   */
  textSync(abs: string): string | undefined {
    try {
      return readFileSync(this.path(abs), 'utf8');
    } catch {
      return undefined;
    }
  }

  async list(abs: string): Promise<string[] | undefined> {
    try {
      return await readdir(this.path(abs));
    } catch {
      return undefined;
    }
  }
}
