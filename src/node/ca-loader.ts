import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

/**
 * THE CA loader for upstream TLS, used by the daemon's undici upstream and by `diagnose`.
 * Passing `ca` replaces Node's default trust store, so the list keeps the public roots and the
 * NODE_EXTRA_CA_CERTS file (which Node only adds to its own default) and adds `caFile`.
 * Undefined when there is no caFile: Node's default store (with NODE_EXTRA_CA_CERTS) applies.
 * Throws the fs error (with its `code`) when caFile cannot be read.
 */
export function loadTrustedCas(caFile: string | null, env: NodeJS.ProcessEnv): string[] | undefined {
  if (caFile === null) return undefined;
  const cas = [...rootCertificates];
  const extra = env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      cas.push(readFileSync(extra, 'utf8'));
    } catch {
      // Node already warned at start-up about an unreadable NODE_EXTRA_CA_CERTS.
    }
  }
  cas.push(readFileSync(caFile, 'utf8'));
  return cas;
}
