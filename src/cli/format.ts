/** Human-readable rendering of progress and outcomes, shared by the CLI and the demo. */
import type { ProbeFacts } from '../contract/facts.js';
import { handshakeVerdict } from '../core/diagnose.js';
import type { RemediationRecord, RestoreParameters } from '../core/outcome.js';
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
    case 'restoring':
      return `restoring the security remediation ${event.restoreOf} lowered: ${describeParameters(event.parameters)}`;
    case 'restore-judged':
      return event.verdict === 'restored'
        ? 'restored: RDP still passes the checks'
        : event.verdict === 'locked-out'
          ? `the restore would lock RDP out; applying the relaxation again (${event.reason ?? ''})`
          : `the restore did not take (${event.reason ?? ''})`;
  }
}

function describeParameters(parameters: RestoreParameters): string {
  const parts = [
    ...(parameters.RestoreSecurityLayer === undefined ? [] : [`SecurityLayer=${parameters.RestoreSecurityLayer}`]),
    ...(parameters.RestoreUserAuthentication === undefined ? [] : [`UserAuthentication=${parameters.RestoreUserAuthentication}`]),
  ];
  return parts.join(' ') || 'nothing recorded';
}

/**
 * What to try on the client side when the server is not (or no longer) the problem, one line
 * each; docs/client-side.md has the longer version.
 */
export const CLIENT_HINTS: readonly string[] = [
  'VPN: latency or MTU can break the TLS handshake on the way; try once without the VPN, from Azure Bastion or from a VM in the same VNet.',
  'Client: use the current mstsc or the Windows App (not the old Store app), on a client with its TLS 1.2 and CredSSP updates.',
  'Host name vs IP: a name can resolve to another machine or a stale address, and certificate-name checks differ; try the IP, check DNS.',
  "RD Gateway: a gateway in between brings its own certificate and policies; try without it, or check the gateway's certificate and RAP/CAP.",
];

/** The loopback RDP handshake in a few characters: what the VM itself showed a client. */
export function handshakeLabel(facts: ProbeFacts | null | undefined, at: Date): string {
  if (!facts) return '-';
  const verdict = handshakeVerdict(facts, at);
  switch (verdict.kind) {
    case 'tls':
      return `TLS ok (${verdict.attempt.servedCert === 'binding' ? 'bound' : 'RD'} cert)`;
    case 'rdp-security':
      return 'RDP security';
    case 'wrong-certificate':
      return 'wrong cert';
    case 'failed':
      switch (verdict.attempt.error) {
        case 'negotiation-failure':
          return `neg. failure ${verdict.attempt.failureCode ?? '?'}`;
        case 'tls':
          return 'TLS failed';
        case 'reset':
          return verdict.attempt.stage === 'tls' ? 'reset in TLS' : `reset at ${verdict.attempt.stage}`;
        case 'refused':
          return 'refused';
        default:
          return `${verdict.attempt.error ?? 'failed'} at ${verdict.attempt.stage}`;
      }
    case 'not-run':
      return 'not run';
  }
}

export function describeOutcome(record: RemediationRecord): string {
  if (record.state !== 'completed') return `${record.id}: ${record.state}`;
  const o = record.outcome;
  const lines = [`outcome: ${o.status.toUpperCase()}  (${o.runCommands} Run Command call${o.runCommands === 1 ? '' : 's'}, ${(o.timings.totalMs / 1000).toFixed(1)} s)`];
  if (record.restoreOf) lines.push(`restore of: ${record.restoreOf}`);
  if (o.status === 'skipped') lines.push(`reason: ${o.reason}: ${o.detail}`);
  if (o.status === 'failed') lines.push(`error (${o.error.kind}): ${o.error.message}`);
  if ('findings' in o && o.findings) {
    for (const f of o.findings) {
      lines.push(`  finding  ${f.severity === 'blocking' ? '✗' : '!'} ${f.code}: ${f.detail}`);
      for (const e of f.evidence ?? []) lines.push(`           event ${e.source} ${e.id} ×${e.count}, last ${e.last}: ${e.text}`);
    }
  }
  if ('before' in o) {
    const at = new Date(record.completedAt);
    const after = 'after' in o ? ` → after: ${handshakeLabel(o.after, at)}` : '';
    lines.push(`handshake (loopback RDP + TLS) before: ${handshakeLabel(o.before, at)}${after}`);
  }
  if ('actions' in o && o.actions) {
    for (const a of o.actions) lines.push(`  action   ${a.changed ? '✓ changed' : '· no change'} ${a.id}${a.verified ? ', verified' : ', NOT verified'}${a.error ? ` (${a.error.code}: ${a.error.message})` : ''}`);
  }
  if (o.status === 'restored') lines.push(`restored: ${describeParameters(o.restoreParameters)}`);
  if (o.status === 'not-fixed' || o.status === 'restore-failed') lines.push(`reason: ${o.reason}`);
  if ('securityChanges' in o) {
    for (const c of o.securityChanges) {
      const until = c.expiresAt ? ` until ${c.expiresAt}, then reverted automatically` : '';
      lines.push(`  SECURITY LOWERED by ${c.action}${until}; to restore now: rdp-remediator restore ${record.id}`);
    }
  }
  if ('backupDir' in o && o.backupDir) lines.push(`backups on the VM: ${o.backupDir}`);
  lines.push(`record: ${record.id}`);
  if (o.status === 'not-fixed' || o.status === 'restore-failed') {
    lines.push('on the client side, which no server change fixes (docs/client-side.md):');
    for (const hint of CLIENT_HINTS) lines.push(`  hint  ${hint}`);
  }
  return lines.join('\n');
}

/** `text` in `width` columns: padded, or cut with an ellipsis. */
export function padCell(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

/**
 * A plain-text table: the header, a rule, one line per row; each column as wide as its widest
 * cell up to `maxCell` (longer cells are cut), two spaces between columns, no trailing spaces.
 */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[], maxCell: number): string {
  const widths = header.map((h, i) => Math.min(maxCell, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => padCell(c, widths[i] ?? 10))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
