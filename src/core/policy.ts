/**
 * Who may do what to a VM. A deployment-wide default mode is the baseline; a VM tag can set
 * its own mode; the request asks for a mode. The effective mode is the narrowest of the
 * request and the VM's policy, so a tag can always hold a VM back.
 *
 * Security-lowering actions need an explicit permission, from the request's `allow` or the
 * VM's allow tag. Nothing deployment-wide grants them.
 */
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { ModeSchema, narrowerMode, type Mode, type RequestMode } from './modes.js';

export const TAG_MODE = 'rdp-remediator-mode';
export const TAG_ALLOW = 'rdp-remediator-allow';

export interface PolicySettings {
  readonly defaultMode: Mode;
}

export type ModeSource = 'default' | 'tag';

export interface EffectivePolicy {
  readonly mode: Mode;
  readonly vmMode: Mode;
  readonly vmModeSource: ModeSource;
  readonly permissions: readonly Permission[];
  /** Tag values that were present but not understood; recorded so a typo is visible. */
  readonly ignoredTags: readonly string[];
}

/** A VM tag's value by its key; tag keys are case-insensitive in Azure. */
export function tagValue(tags: Readonly<Record<string, string>>, key: string): string | undefined {
  const wanted = key.toLowerCase();
  for (const [k, v] of Object.entries(tags)) if (k.toLowerCase() === wanted) return v;
  return undefined;
}

export function resolvePolicy(
  settings: PolicySettings,
  tags: Readonly<Record<string, string>>,
  request: { readonly mode: RequestMode; readonly allow: readonly Permission[] },
): EffectivePolicy {
  const ignoredTags: string[] = [];

  let vmMode = settings.defaultMode;
  let vmModeSource: ModeSource = 'default';
  const modeTag = tagValue(tags, TAG_MODE);
  if (modeTag !== undefined) {
    const parsed = ModeSchema.safeParse(modeTag.trim().toLowerCase());
    if (parsed.success) {
      vmMode = parsed.data;
      vmModeSource = 'tag';
    } else {
      // An unreadable mode tag must not widen anything: treat it as 'off'.
      vmMode = 'off';
      vmModeSource = 'tag';
      ignoredTags.push(`${TAG_MODE}=${modeTag}`);
    }
  }

  const permissions = new Set<Permission>(request.allow);
  const allowTag = tagValue(tags, TAG_ALLOW);
  if (allowTag !== undefined) {
    for (const entry of allowTag.split(/[,;\s]+/).filter(Boolean)) {
      const parsed = PermissionSchema.safeParse(entry.toLowerCase());
      if (parsed.success) permissions.add(parsed.data);
      else ignoredTags.push(`${TAG_ALLOW}=${entry}`);
    }
  }

  return {
    mode: narrowerMode(request.mode, vmMode),
    vmMode,
    vmModeSource,
    permissions: PermissionSchema.options.filter((p) => permissions.has(p)),
    ignoredTags,
  };
}
