import { StratumError } from '@stratum/core';

// Apart from the S3 backend, which loads the AWS SDK (about 200 ms): host.toml's [bucket] tables
// are checked with this at every start, S3 or not.
export function parseS3Location(location: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(location);
  if (!match?.[1]) {
    throw new StratumError('BUCKET_CONFIG', `"${location}" is not an S3 location`, {
      hint: 'Write s3://<bucket> or s3://<bucket>/<prefix>.',
    });
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: match[1], prefix: prefix === '' ? '' : `${prefix}/` };
}

/** Where and as whom an S3 client connects, as host.toml's [bucket] table gives it. */
export interface S3Connection {
  endpoint?: string | undefined;
  region?: string | undefined;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  forcePathStyle?: boolean | undefined;
}

/**
 * The S3 client's settings for a connection, for the backend and for the host's check of the
 * table at start alike: AWS's us-east-1 by default, and path-style URLs with an endpoint (what
 * most S3-compatible services need).
 */
export function s3ClientSettings(connection: S3Connection) {
  return {
    region: connection.region ?? 'us-east-1',
    ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
    forcePathStyle: connection.forcePathStyle ?? connection.endpoint !== undefined,
    ...(connection.accessKeyId && connection.secretAccessKey
      ? { credentials: { accessKeyId: connection.accessKeyId, secretAccessKey: connection.secretAccessKey } }
      : {}),
  };
}
