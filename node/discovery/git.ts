/**
 * The `git` method: a file in a git repository lists peers, one `host:port` per line (`#`
 * comments allowed), like a lookupd. Polled: one small request asks where the ref points;
 * only a new commit is fetched. The repository is kept bare in the data dir.
 */
import fs from 'node:fs'
import { join } from 'node:path'
import type IsoGit from 'isomorphic-git'
import { OriginError } from '../errors'
import { GitStore } from '../git/store'
import { parsePeersFile } from './peers'
import { PolledDiscovery } from './polled'
import type { Discovery, DiscoveryComponents } from './types'

export interface GitDiscoveryInit {
  /** Repository URL (http or https). */
  url: string
  /** Branch (or full ref). @default the remote's HEAD */
  ref?: string
  /** Path of the peers file in the repository, e.g. `clusters/prod/peers`. */
  path: string
  /** Sent as HTTP basic auth (user `x-access-token`). @default none: a public repository */
  token?: string
  /** Time between polls. Shorter finds new nodes sooner for more requests to the git host. @default 10000 */
  intervalMs?: number
  /** The largest peers file read. @default 1048576 */
  maxBytes?: number
}

export const gitDefaults = { intervalMs: 10_000, maxBytes: 1 << 20 }

export function gitDiscovery (init: GitDiscoveryInit) {
  return (c: DiscoveryComponents): Discovery => {
    const o = { ...gitDefaults, ...init }
    const store = new GitStore(join(c.dataDir, 'discovery.git'))
    const remote = { url: o.url, ref: o.ref, token: o.token, userAgent: `origin-node/${c.nodeId}` }
    const name = `git ${o.url} ${o.path}`
    let seen: { oid: string, peers: string[] } | undefined
    const lookup = async (): Promise<string[]> => {
      const head = await store.remoteHead(remote)
      if (seen?.oid === head.oid) return seen.peers
      await store.init()
      const commit = await store.fetch(remote, head.ref)
      const text = await readFileAt(store.gitdir, commit, o.path, o.maxBytes)
      const { peers, bad } = parsePeersFile(text)
      for (const b of bad.slice(0, 5)) c.log.warn(`${name}: line ${b.line} is not host:port: "${b.text}" (skipped)`)
      seen = { oid: head.oid, peers }
      return peers
    }
    return new PolledDiscovery(name, o.intervalMs, c.log, lookup)
  }
}

async function readFileAt (gitdir: string, commit: string, path: string, maxBytes: number): Promise<string> {
  const git = (require('isomorphic-git') as { default: typeof IsoGit }).default
  let blob: Uint8Array
  try {
    ({ blob } = await git.readBlob({ fs, gitdir, oid: commit, filepath: path.replace(/^\/+/, '') }))
  } catch (err) {
    throw new OriginError('E_NOT_FOUND', `commit ${commit.slice(0, 12)} has no file ${path}`, { commit, file: path })
  }
  if (blob.length > maxBytes) throw new OriginError('E_CONFIG_INVALID', `${path} is ${blob.length} bytes; a peers file may have at most ${maxBytes}`, { file: path })
  return Buffer.from(blob).toString('utf8')
}
