// Why a bundle was not installed, in words a user can act on. The agent sends `message` as
// CommandResult.error; `reason` lets code (and tests) tell the cases apart.
export type BundleInstallFailure =
  | 'malformed' // probe, version, arch, a sha256 or a mode cannot be what the protocol allows
  | 'unsafe-path' // a file path could land outside the version directory
  | 'duplicate-path' // two files with one path, or a path that is both a file and a directory
  | 'too-large' // beyond this agent's bundle size or file count limits
  | 'signature' // not signed by the controller key pinned at enrollment
  | 'arch' // built for another architecture than this device's
  | 'sha256' // a file's content does not match its signed sha256
  | 'no-loader' // no executable file named after the probe
  | 'version-conflict' // this version is installed already with other files
  | 'no-previous' // rollback with nothing to roll back to
  | 'io'; // the disk failed us while staging; nothing was installed

export class BundleInstallError extends Error {
  override readonly name = 'BundleInstallError';
  constructor(
    readonly reason: BundleInstallFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
