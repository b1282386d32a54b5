export {
  answerChallenge,
  type Challenge,
  type ChallengeResponse,
  type ChallengeStore,
  challengeSigningInput,
  DEFAULT_CHALLENGE_TTL_MS,
  issueChallenge,
  MAX_CHALLENGE_TTL_MS,
  MemoryChallengeStore,
  type VerifiedHost,
  verifyChallenge,
} from './challenge.ts';
export {
  assertDomainLinked,
  checkDomain,
  type DomainCheck,
} from './check.ts';
export { EmbeddedDnsServer, type EmbeddedDnsServerOptions, startEmbeddedDnsServer } from './embedded-server.ts';
export {
  acceptHostKey,
  announceNextKey,
  type HostKey,
  hostKeyFromJwk,
  loadHostKey,
  nextKeyIsAuthentic,
  rotationStatement,
} from './host-key.ts';
export {
  CHALLENGE_LABEL,
  challengeRecordName,
  HOST_LABEL,
  hostRecordName,
  LINK_LABEL,
  linkRecordName,
  normaliseHostName,
  SERVICE_LABELS,
  serviceTypeName,
} from './names.ts';
export {
  challengeTxtValue,
  type DomainLink,
  formatDomainLink,
  formatHostRecord,
  formatServiceInstanceTxt,
  type HostRecord,
  interfaceSatisfies,
  missingInterfaces,
  parseChallengeTxt,
  parseDomainLink,
  parseHostRecord,
  parseServiceInstanceTxt,
  parseWitList,
  type ServiceInstanceInfo,
  type WitInterface,
} from './records.ts';
export { DiscoveryResolver, type DiscoveryResolverOptions, parseServerAddress, type ServiceInstance } from './resolver.ts';
export { Rfc2136Writer, type Rfc2136WriterOptions } from './rfc2136.ts';
export { parseTsigKey, signMessage, type TsigKey, type TsigVerdict, verifyMessage } from './tsig.ts';
export {
  chooseStratumRecord,
  isStratumTxt,
  MAX_RECORD_OCTETS,
  MAX_STRING_OCTETS,
  PROTOCOL_VERSION,
  parseTxtPairs,
  type TxtPairs,
} from './txt.ts';
export {
  type DecodedUpdate,
  decodeMessage,
  decodeUpdateMessage,
  encodeUpdateMessage,
  type RecordData,
  type RecordType,
  type UpdateOperation,
} from './wire.ts';
export {
  CHALLENGE_TTL,
  DEFAULT_TTL,
  type DnsChange,
  type DnsWriter,
  domainLinkChanges,
  publishChallenge,
  publishDomainLink,
  publishHostRecord,
  publishServiceInstance,
  routingChanges,
  withdrawChallenge,
  zoneFileTxt,
} from './writer.ts';
