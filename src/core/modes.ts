import * as z from 'zod';

/** What a remediation may do: nothing, read-only probe and plan, or probe, fix and verify. */
export const MODES = ['off', 'diagnose', 'repair'] as const;
export const ModeSchema = z.enum(MODES);
export type Mode = z.infer<typeof ModeSchema>;

/** Modes a caller can ask for ('off' is a policy setting, not a request). */
export const RequestModeSchema = z.enum(['diagnose', 'repair']);
export type RequestMode = z.infer<typeof RequestModeSchema>;

const RANK: Record<Mode, number> = { off: 0, diagnose: 1, repair: 2 };

/** The less permissive of two modes. */
export function narrowerMode(a: Mode, b: Mode): Mode {
  return RANK[a] <= RANK[b] ? a : b;
}
