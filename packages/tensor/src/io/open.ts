/**
 * Opening safetensors by name on either platform: a path on disk in Node, a URL in a browser
 * (package.json `imports` "#platform" picks the side). Bytes already in memory: loadSafetensors.
 */
export { openSafetensors, writeSafetensorsTo } from '#platform';
