/**
 * Network faults on loopback addresses with iptables (root): a node's own 127.x address cut
 * off from everything, and healed. Tests that use it skip where `iptablesWorks()` is false.
 */
import { execFileSync } from 'node:child_process'

export function iptablesWorks (): boolean {
  if (process.getuid?.() !== 0) return false
  try { execFileSync('iptables', ['-L', 'INPUT', '-n'], { stdio: 'ignore' }); return true } catch { return false }
}

/** Drop every packet to or from `host` until the returned function is called (twice is harmless). */
export function isolate (host: string): () => void {
  const rules = [['INPUT', '-s', host, '-j', 'DROP'], ['INPUT', '-d', host, '-j', 'DROP']]
  for (const r of rules) execFileSync('iptables', ['-I', ...r])
  let healed = false
  return () => {
    if (healed) return
    healed = true
    for (const r of rules) execFileSync('iptables', ['-D', ...r])
  }
}
