// Names the Intl comparisons of the ops capsule and of bench/servers/direct.ts sort: ASCII ones,
// which the SDK compares in the capsule for English, and accented ones, which go to the host.
export const NAMES = [
  'Anna Smith',
  'bob Jones',
  'Carla Doe',
  'anna Smith',
  'Dave Jones',
  'Émile Zola',
  'Zoë Ball',
  'Ärger Hans',
  'zebra 9',
  'Apple 10',
];
