/**
 * PowerShell for the tests: the pwsh that tools/pwsh.mjs finds (PWSH_PATH, the pinned local
 * .NET tool in the NuGet packages folder, or pwsh 7.6 on PATH; never installs). Without it the
 * PowerShell tests skip loudly outside CI; under CI=true one failing test says why.
 */
import { beforeEach, describe, it } from 'vitest';
import { findPwsh } from '../../tools/pwsh.mjs';

let located: string | null | undefined;

/**
 * The pwsh executable to use, or null, from tools/pwsh.mjs (PWSH_PATH, the pinned local .NET
 * tool in the NuGet packages folder, or pwsh 7.6 on PATH; never installs). Looked up once.
 */
export function findPowerShell(): string | null {
  if (located === undefined) located = findPwsh({ install: false });
  return located;
}

export interface PowerShellForTests {
  readonly pwsh: string | null;
  /** `describe` when PowerShell is there, else `describe.skip`. */
  readonly describeWithPowerShell: (name: string, factory: () => void) => void;
}

/**
 * For a test file whose tests need PowerShell. Without it: a loud warning and skipped tests
 * outside CI; under CI=true one failing test that says why (the others are skipped).
 */
export function powerShellForTests(label: string): PowerShellForTests {
  const pwsh = findPowerShell();
  if (pwsh !== null) return { pwsh, describeWithPowerShell: describe };
  const reason = 'no PowerShell 7 found by tools/pwsh.mjs (PWSH_PATH, the local .NET tool after `dotnet tool restore`, or pwsh 7.6 on PATH)';
  if (process.env['CI'] === 'true') {
    describe(`${label}: PowerShell`, () => {
      it('is installed (CI=true requires it)', () => {
        throw new Error(`${label}: ${reason}`);
      });
    });
  } else {
    console.warn(`\n!!! [${label}] PowerShell tests SKIPPED: ${reason}\n`);
  }
  return { pwsh: null, describeWithPowerShell: describe.skip };
}


/**
 * For a test file whose tests run payloads (through the emulator): without PowerShell, outside
 * CI every test in the file is skipped with one loud warning; under CI=true one failing test
 * says why, and the rest fail as they may.
 */
export function requirePowerShellForFile(label: string): void {
  const { pwsh } = powerShellForTests(label);
  if (pwsh === null && process.env['CI'] !== 'true') beforeEach((context) => context.skip());
}
