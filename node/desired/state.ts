/** The spec layer's runtime data: where the spec comes from, what was applied or rejected. */
import type { MemberTable } from '../membership'
import type { CommitInfo } from '../git/store'
import type { Spec } from './load'

export type SpecSource =
  | { kind: 'none' }
  | { kind: 'dir', dir: string }
  | {
    kind: 'git'
    /** HTTP(S) URL of the spec repo. */
    url: string
    /** Branch to follow. @default the remote's HEAD */
    ref?: string
    token?: string
    /** How often hubs look for a new commit (one small request when nothing changed). */
    pollIntervalMs: number
    /** HMAC secret for `POST /hooks/git`; absent: no webhook. */
    webhookSecret?: string
    /** OpenSSH public keys (allowed_signers lines); when set, only commits signed by one are applied. */
    allowedSigners?: string[]
  }

export interface Applied {
  version: string
  spec: Spec
  /** Every file of that version: services without a `code` repo run from these. */
  files: Map<string, Buffer>
  /** Files that are not plain: 0o755 executables, 0o120000 symbolic links (content = target). */
  modes: Map<string, number>
  info: CommitInfo
  appliedAt: number
}
export interface Rejection { version: string, info: CommitInfo, errors: string[], at: number }

export interface SyncResult {
  node: string
  outcome: 'applied' | 'unchanged' | 'rejected' | 'failed'
  commit?: string
  errors?: string[]
  error?: string
}

/**
 * Which commit a node that does not talk to the remote should run: the one most alive
 * hubs run (ties go to the stronger hub), and a hub to take it from. Pure.
 */
export function followTarget (table: MemberTable, hubs: string[], self: string): { commit: string, hub: string, address: string } | undefined {
  const votes = new Map<string, { count: number, firstRank: number, hub: string }>()
  hubs.forEach((id, rank) => {
    const m = table[id]
    if (m === undefined || id === self || m.status !== 'alive' || m.spec === undefined || m.spec.startsWith('dir:')) return
    const v = votes.get(m.spec)
    if (v === undefined) votes.set(m.spec, { count: 1, firstRank: rank, hub: id })
    else v.count++
  })
  const best = [...votes.entries()].sort(([, a], [, b]) => b.count - a.count || a.firstRank - b.firstRank)[0]
  if (best === undefined) return undefined
  return { commit: best[0], hub: best[1].hub, address: table[best[1].hub].address }
}
