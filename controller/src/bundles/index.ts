// Signed probe bundles: the controller's Ed25519 signing key and bundles built from bpf/out/.
export { buildBundle, type BuildBundleOptions, type SignedBundle } from './build-bundle.js';
export { isProbeArch, loaderArch, PROBE_ARCHES, type ProbeArch } from './loader-arch.js';
export { loadOrCreateSigningKey, loadSigningKey, SIGNING_KEY_FILE, type BundleSigningKey } from './signing-key.js';
