/**
 * Network faults on loopback addresses with iptables (root): a node's own 127.x address cut
 * off from everything, or two groups of addresses cut from each other, and healed. Tests
 * that use it skip where `iptablesWorks()` is false.
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

/**
 * Drop every packet between the addresses of `a` and those of `b` (CIDRs such as
 * 127.61.0.0/16, both ways) until the returned function is called (twice is harmless).
 * Addresses outside both, like the test's own 127.0.0.1, still reach everyone.
 */
export function partition (a: string, b: string): () => void {
  const rules = [['INPUT', '-s', a, '-d', b, '-j', 'DROP'], ['INPUT', '-s', b, '-d', a, '-j', 'DROP']]
  const added: string[][] = []
  try {
    for (const r of rules) { execFileSync('iptables', ['-I', ...r]); added.push(r) }
  } catch (err) {
    for (const r of added) execFileSync('iptables', ['-D', ...r])
    throw err
  }
  let healed = false
  return () => {
    if (healed) return
    healed = true
    for (const r of rules) execFileSync('iptables', ['-D', ...r])
  }
}
