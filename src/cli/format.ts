/** Human-readable rendering of progress and outcomes, shared by the CLI and the demo. */
import type { RemediationRecord } from '../core/outcome.js';
import type { ProgressEvent } from '../pipeline/remediate.js';

export function describeProgress(event: ProgressEvent): string {
  switch (event.step) {
    case 'vm-read':
      return `read VM: ${event.vm.osType}, power ${event.vm.powerState ?? 'unknown'}, agent ${event.vm.agent.status ?? 'unknown'}`;
    case 'policy':
      return `policy: mode ${event.mode}${event.permissions.length ? `, allowed ${event.permissions.join(', ')}` : ''}`;
    case 'lock-acquired':
      return 'took the VM lock';
    case 'run-command':
      return `running ${event.payload} payload${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`;
    case 'run-command-busy':
      return `another Run Command is in progress on the VM; retrying ${event.payload} in ${Math.round(event.delayMs / 1000)} s`;
    case 'probed':
      return `findings: ${event.findings.length ? event.findings.join(', ') : 'none'}`;
    case 'planned':
      return `plan: ${event.actions.length ? event.actions.join(' → ') : 'nothing to do'}${event.refused.length ? ` (refused: ${event.refused.join(', ')})` : ''}`;
    case 'fixed':
      return `changed: ${event.changed.length ? event.changed.join(', ') : 'nothing'}`;
  }
}

export function describeOutcome(record: RemediationRecord): string {
  if (record.state !== 'completed') return `${record.id}: ${record.state}`;
  const o = record.outcome;
  const lines = [`outcome: ${o.status.toUpperCase()}  (${o.runCommands} Run Command call${o.runCommands === 1 ? '' : 's'}, ${(o.timings.totalMs / 1000).toFixed(1)} s)`];
  if (o.status === 'skipped') lines.push(`reason: ${o.reason}: ${o.detail}`);
  if (o.status === 'failed') lines.push(`error (${o.error.kind}): ${o.error.message}`);
  if ('findings' in o && o.findings) for (const f of o.findings) lines.push(`  finding  ${f.severity === 'blocking' ? '✗' : '!'} ${f.code}: ${f.detail}`);
  if ('actions' in o && o.actions) {
    for (const a of o.actions) lines.push(`  action   ${a.changed ? '✓ changed' : '· no change'} ${a.id}${a.verified ? ', verified' : ', NOT verified'}${a.error ? ` (${a.error.code}: ${a.error.message})` : ''}`);
  }
  if (o.status === 'not-fixed') lines.push(`reason: ${o.reason}`);
  if ('securityChanges' in o) {
    for (const c of o.securityChanges) lines.push(`  SECURITY LOWERED by ${c.action}; to restore run ${c.restore.action} with ${JSON.stringify(c.restore.parameters)}`);
  }
  if ('backupDir' in o && o.backupDir) lines.push(`backups on the VM: ${o.backupDir}`);
  lines.push(`record: ${record.id}`);
  return lines.join('\n');
}
