import type { Command } from '../command.ts';
import { buildCommand } from './build.ts';
import { devCommand } from './dev.ts';
import { dnsCheckCommand } from './dns-check.ts';
import { hostKeygenCommand } from './host-keygen.ts';
import { hostStartCommand } from './host-start.ts';
import { hostStatusCommand } from './host-status.ts';
import { initCommand } from './init.ts';
import { pullCommand } from './pull.ts';
import { pushCommand } from './push.ts';
import { validateCommand } from './validate.ts';

/** Every `stratum` subcommand, in the order `stratum --help` lists them. */
export const commands: Command[] = [
  validateCommand,
  devCommand,
  buildCommand,
  initCommand,
  pushCommand,
  pullCommand,
  hostKeygenCommand,
  hostStartCommand,
  hostStatusCommand,
  dnsCheckCommand,
];
