// Types for tools/pwsh.mjs, a plain ES module so that .ci/run, npm scripts and tools/test.mjs
// can run it without a build.

export interface PwshFound {
  readonly path: string;
  /** The pinned version, or what `pwsh` on PATH reported. */
  readonly version: string;
  readonly source: 'PWSH_PATH' | 'dotnet-tool' | 'PATH';
  /** What was tried and passed over on the way (a PWSH_PATH that does not exist, ...). */
  readonly notes: readonly string[];
}

export interface PwshMissing {
  readonly path: null;
  /** The pinned version. */
  readonly version: string;
  readonly notes: readonly string[];
  /** What was tried and how to install PowerShell 7, ready to print. */
  readonly message: string;
}

export interface LocatePwshOptions {
  /** May run `dotnet tool restore` in the project root when the tool package is missing (default false). */
  readonly install?: boolean;
  /** Progress messages, such as the restore starting (default console.error). */
  readonly log?: (message: string) => void;
}

export interface FindPwshOptions extends LocatePwshOptions {
  /** Print nothing when PowerShell is missing (default false: print what was tried and how to install it). */
  readonly quiet?: boolean;
}

/** The repository root (the folder above tools/). */
export declare const projectRoot: string;
/** The PowerShell version pinned in .config/dotnet-tools.json. */
export declare function pinnedPowerShellVersion(): string;
/** $NUGET_PACKAGES or ~/.nuget/packages. */
export declare function nugetPackagesFolder(): string;
/** The search, with what it tried; prints only progress (a restore starting). */
export declare function locatePwsh(options?: LocatePwshOptions): PwshFound | PwshMissing;
/** The pwsh executable, or null after printing what was tried and how to install PowerShell 7 (unless quiet). */
export declare function findPwsh(options?: FindPwshOptions): string | null;
