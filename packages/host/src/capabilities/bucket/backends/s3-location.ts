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
