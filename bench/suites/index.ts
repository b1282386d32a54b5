import type { Suite } from '../lib/suite.ts';
import { capabilitiesSuite } from './capabilities.ts';
import { densitySuite } from './density.ts';
import { migrationSuite } from './migration.ts';
import { overheadSuite } from './overhead.ts';
import { startupSuite } from './startup.ts';
import { waitingSuite } from './waiting.ts';

export const suites: Suite[] = [overheadSuite, startupSuite, capabilitiesSuite, waitingSuite, densitySuite, migrationSuite];
