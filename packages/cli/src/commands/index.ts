import type { Command } from '../command.ts';
import { buildCommand } from './build.ts';
import { devCommand } from './dev.ts';
import { dnsCheckCommand } from './dns-check.ts';
import {
  hostDrainCommand,
  hostInstallCommand,
  hostLogsCommand,
  hostMoveCommand,
  hostServeCommand,
  hostStopCommand,
  hostUninstallCommand,
  hostUsageCommand,
} from './host-capsules.ts';
import { hostChallengeAnswerCommand } from './host-challenge.ts';
import { hostInitCommand } from './host-init.ts';
import { hostKeygenCommand } from './host-keygen.ts';
import { hostRecordCommand } from './host-record.ts';
import { hostReportCommand, hostReportVerifyCommand } from './host-report.ts';
import { hostStartCommand } from './host-start.ts';
import { hostExportCommand, hostImportCommand } from './host-state.ts';
import { hostStatusCommand } from './host-status.ts';
import { initCommand } from './init.ts';
import { pullCommand } from './pull.ts';
import { pushCommand } from './push.ts';
import { registrarChallengeCommand, registrarVerifyCommand } from './registrar-challenge.ts';
import { validateCommand } from './validate.ts';

/**
 * Every `stratum` subcommand, in the order `stratum --help` lists them. Every invocation imports
 * all of these modules (for the list and the lookup), so a command imports the packages only it
 * needs (the host, the registry client, DNS discovery, the SDK's build, the manifest parser) inside
 * its `run`: importing them all up front cost `stratum --help` about 300 ms of a 0.5 s start.
 */
export const commands: Command[] = [
  validateCommand,
  devCommand,
  buildCommand,
  initCommand,
  pushCommand,
  pullCommand,
  hostInitCommand,
  hostKeygenCommand,
  hostRecordCommand,
  hostStartCommand,
  hostStatusCommand,
  hostInstallCommand,
  hostServeCommand,
  hostDrainCommand,
  hostStopCommand,
  hostUninstallCommand,
  hostLogsCommand,
  hostUsageCommand,
  hostReportCommand,
  hostReportVerifyCommand,
  hostMoveCommand,
  hostExportCommand,
  hostImportCommand,
  hostChallengeAnswerCommand,
  registrarChallengeCommand,
  registrarVerifyCommand,
  dnsCheckCommand,
];
