// Signed probe bundles: verify against the controller key pinned at enrollment, install
// atomically, roll back, list for Hello.installed.
export { BundleInstallError, type BundleInstallFailure } from './bundle-install-error.js';
export { BundleInstaller, type BundleInstallerOptions, type InstallOutcome, type RollbackOutcome } from './bundle-installer.js';
export { pinnedKeyFromRaw, verifyBundle, type BundleLimits, type BundleToInstall, type PinnedKey } from './verify-bundle.js';
