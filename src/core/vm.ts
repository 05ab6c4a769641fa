/**
 * What the core needs to know about a VM, converted from ARM's shape by the compute adapter,
 * and whether Run Command can reach it at all.
 */
import type { VmRef } from './resource-id.js';

export type OsType = 'Windows' | 'Linux' | 'Unknown';

export interface VmView {
  readonly ref: VmRef;
  readonly location: string;
  readonly osType: OsType;
  /** The PowerState/<state> code's state, e.g. 'running', 'deallocated'; null when ARM gave none. */
  readonly powerState: string | null;
  readonly agent: { readonly ready: boolean; readonly status: string | null; readonly message: string | null };
  readonly tags: Readonly<Record<string, string>>;
}

export type SkipReason = 'linux' | 'not-running' | 'agent-not-ready' | 'policy-off' | 'vm-busy' | 'duplicate';

export type Eligibility = { readonly eligible: true } | { readonly eligible: false; readonly reason: SkipReason; readonly detail: string };

export function checkEligibility(vm: VmView): Eligibility {
  if (vm.osType === 'Linux') return { eligible: false, reason: 'linux', detail: 'Linux VM: the RDP payloads are Windows-only' };
  if (vm.powerState !== 'running') {
    return { eligible: false, reason: 'not-running', detail: `VM is ${vm.powerState ?? 'in an unknown power state'}; Run Command needs it running` };
  }
  if (!vm.agent.ready) {
    return {
      eligible: false,
      reason: 'agent-not-ready',
      detail: `VM agent is ${vm.agent.status ?? 'not reporting'}${vm.agent.message ? `: ${vm.agent.message}` : ''}; Run Command cannot run`,
    };
  }
  return { eligible: true };
}
