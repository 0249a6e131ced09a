/**
 * git: a bare repository in the node's data dir, worked with isomorphic-git. The spec
 * layer keeps spec commits in one (hubs fill it from the remote; other nodes with objects
 * a hub sends, each checked against its id, so a commit id pins every file it names); the
 * supervisor keeps services' code repos in others.
 */
import fs from 'node:fs'
import { join } from 'node:path'
import type IsoGit from 'isomorphic-git'
import type { HttpClient } from 'isomorphic-git'

import { isoTime } from '../clock'
import { OriginError, errorMessage } from '../errors'
import { gitHttp } from './http'

/** isomorphic-git is loaded on first use: a node without a git spec or code repo never pays for it. */
const iso = (): { git: typeof IsoGit } => ({ git: (require('isomorphic-git') as { default: typeof IsoGit }).default })
/** Requests to git servers fail after a silence (http.ts): a server that never answers holds nothing for ever. */
const timedHttp: HttpClient = gitHttp()

export interface Remote {
  url: string
  /** Branch (or full ref) to follow. Absent: the remote's HEAD. */
  ref?: string
  /** Sent as HTTP basic auth (user `x-access-token`), as git hosts accept for tokens. */
  token?: string
  /** Identifies the node to the git server (User-Agent). */
  userAgent: string
}

export interface GitObject { oid: string, type: 'commit' | 'tree' | 'blob', data: Uint8Array }

export interface CommitInfo { id: string, author: string, date: string, message: string }

export class GitStore {
  private readonly cache = {}
  constructor (readonly gitdir: string) {}

  async init (): Promise<void> {
    if (!fs.existsSync(join(this.gitdir, 'HEAD'))) await iso().git.init({ fs, gitdir: this.gitdir, bare: true, defaultBranch: 'main' })
  }

  private auth (r: Remote) {
    return {
      http: timedHttp,
      url: r.url,
      headers: { 'user-agent': r.userAgent },
      onAuth: r.token === undefined ? undefined : () => ({ username: 'x-access-token', password: r.token })
    }
  }

  /** The commit the remote's ref points at now: one small request. */
  async remoteHead (r: Remote): Promise<{ ref: string, oid: string }> {
    const refs = await iso().git.listServerRefs({ ...this.auth(r), symrefs: true, prefix: r.ref === undefined ? 'HEAD' : fullRef(r.ref) })
    const want = r.ref === undefined ? 'HEAD' : fullRef(r.ref)
    const found = refs.find((x) => x.ref === want)
    if (found === undefined) throw new OriginError('E_NOT_FOUND', `${r.url} has no ${want}`, { url: r.url, ref: want })
    return { ref: r.ref === undefined ? (found.target ?? 'HEAD') : want, oid: found.oid }
  }

  /** Fetch `ref` from the remote; returns the commit it points at. */
  async fetch (r: Remote, ref: string): Promise<string> {
    await iso().git.addRemote({ fs, gitdir: this.gitdir, remote: 'origin', url: r.url, force: true })
    const result = await iso().git.fetch({ fs, ...this.auth(r), gitdir: this.gitdir, remote: 'origin', ref, singleBranch: true, tags: false, cache: this.cache })
    if (result.fetchHead === null) throw new OriginError('E_NOT_FOUND', `fetching ${ref} from ${r.url} returned no commit`)
    return result.fetchHead
  }

  async has (oid: string): Promise<boolean> {
    return await iso().git.readObject({ fs, gitdir: this.gitdir, oid, format: 'deflated', cache: this.cache }).then(() => true, () => false)
  }

  /** The commit, its trees and blobs, raw: what another node needs to rebuild it. */
  async objectsOf (commit: string): Promise<GitObject[]> {
    const out: GitObject[] = []
    const raw = async (oid: string): Promise<GitObject> => {
      const o = await iso().git.readObject({ fs, gitdir: this.gitdir, oid, format: 'content', cache: this.cache })
      return { oid, type: o.type as GitObject['type'], data: o.object as Uint8Array }
    }
    const c = await raw(commit)
    if (c.type !== 'commit') throw new OriginError('E_NOT_FOUND', `${commit} is a ${c.type}, not a commit`)
    out.push(c)
    const { commit: parsed } = await iso().git.readCommit({ fs, gitdir: this.gitdir, oid: commit, cache: this.cache })
    const walk = async (treeOid: string): Promise<void> => {
      out.push(await raw(treeOid))
      const { tree } = await iso().git.readTree({ fs, gitdir: this.gitdir, oid: treeOid, cache: this.cache })
      for (const e of tree) {
        if (e.type === 'tree') await walk(e.oid)
        else if (e.type === 'blob') out.push(await raw(e.oid))
      }
    }
    await walk(parsed.tree)
    return out
  }

  /**
   * Store objects another node sent for `commit`. Each object's id is recomputed from its
   * content; then every file the commit names must be present. Anything else is refused.
   */
  async importObjects (commit: string, objects: GitObject[]): Promise<void> {
    for (const o of objects) {
      const oid = await iso().git.writeObject({ fs, gitdir: this.gitdir, type: o.type, object: o.data, format: 'content' })
      if (oid !== o.oid) throw new OriginError('E_SPEC_INVALID', `received object claimed to be ${o.oid} hashes to ${oid}`, { commit })
    }
    const objectsOfCommit = await this.objectsOf(commit).catch((err) => {
      throw new OriginError('E_SPEC_INVALID', `received commit ${commit.slice(0, 12)} is incomplete: ${errorMessage(err)}`, { commit })
    })
    if (objectsOfCommit[0]?.oid !== commit) throw new OriginError('E_SPEC_INVALID', `received objects are not commit ${commit}`)
  }

  /**
   * Every file of the commit's tree, by repo-relative path. With `modes`, also records each
   * file that is not a plain file: 0o755 for executables, 0o120000 for symbolic links (whose
   * content is the link's target, as git stores it).
   */
  async files (commit: string, modes?: Map<string, number>, maxBytes = Infinity): Promise<Map<string, Buffer>> {
    const files = new Map<string, Buffer>()
    let total = 0
    const { commit: parsed } = await iso().git.readCommit({ fs, gitdir: this.gitdir, oid: commit, cache: this.cache })
    const walk = async (treeOid: string, prefix: string): Promise<void> => {
      const { tree } = await iso().git.readTree({ fs, gitdir: this.gitdir, oid: treeOid, cache: this.cache })
      for (const e of tree) {
        const path = prefix + e.path
        if (e.type === 'tree') await walk(e.oid, path + '/')
        else if (e.type === 'blob') {
          const { blob } = await iso().git.readBlob({ fs, gitdir: this.gitdir, oid: e.oid, cache: this.cache })
          total += blob.length
          if (total > maxBytes) throw tooLarge(commit, files, path, blob.length, maxBytes)
          files.set(path, Buffer.from(blob))
          if (e.mode === '100755') modes?.set(path, 0o755)
          else if (e.mode === '120000') modes?.set(path, 0o120000)
        }
      }
    }
    await walk(parsed.tree, '')
    return files
  }

  /** The raw commit object: what an SSH signature covers (minus its gpgsig header). */
  async rawCommit (commit: string): Promise<Buffer> {
    const o = await iso().git.readObject({ fs, gitdir: this.gitdir, oid: commit, format: 'content', cache: this.cache })
    return Buffer.from(o.object as Uint8Array)
  }

  async info (commit: string): Promise<CommitInfo> {
    const { commit: c } = await iso().git.readCommit({ fs, gitdir: this.gitdir, oid: commit, cache: this.cache })
    return {
      id: commit,
      author: `${c.author.name} <${c.author.email}>`,
      date: isoTime(c.author.timestamp * 1000),
      message: c.message.trim()
    }
  }
}

/** A commit over the size limit, naming its largest files (read one at a time: never the whole commit in memory). */
function tooLarge (commit: string, files: Map<string, Buffer>, path: string, size: number, maxBytes: number): OriginError {
  const sizes = [...files].map(([p, b]) => [p, b.length] as const).concat([[path, size]]).sort((a, b) => b[1] - a[1]).slice(0, 3)
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`
  return new OriginError('E_SPEC_INVALID', `commit ${commit.slice(0, 12)} is over the ${mib(maxBytes)} limit (maxCommitMb in cluster.json); largest files: ${sizes.map(([p, n]) => `${p} (${mib(n)})`).join(', ')}`, { commit, file: sizes[0][0] })
}

function fullRef (ref: string): string {
  return ref.startsWith('refs/') ? ref : `refs/heads/${ref}`
}
