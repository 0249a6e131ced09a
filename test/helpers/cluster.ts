/**
 * A cluster factory for multi-node tests: real node processes (compiled JS), real mutual
 * TLS, each node on its own loopback address, with a fast membership profile. Every test
 * gets its own keys and temp dir; `cleanup` stops every process and removes the dir.
 */
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { localSettings } from '../../node/config/local'
import { initKeys, issueOperator } from '../../node/keys'
import { launchNode, type NodeProcess } from '../../node/launch'
import { connectCluster, type Cluster } from '../../repl/client'
import type { NodeRow } from '../../node/control'
import { waitFor } from './wait'

/** The local profile's failure detection (node/config/local.ts says why these timings), as image.json `membership`. */
export const fastMembership = localSettings.membership

export interface NodeSpec {
  name: string
  /** Seeds: addresses, or names of nodes of this test cluster. Default: the first node's address. */
  seeds?: string[]
  memoryMb?: number
  cpus?: number
  labels?: Record<string, string>
  hubs?: { count?: number, memoryMargin?: number }
  /** A keys dir other than the cluster's (e.g. another CA). */
  keys?: string
  /** Use this address instead of a fresh one. */
  address?: string
  /** Membership timings. @default fastMembership */
  membership?: Record<string, number>
  /** @default 'debug' */
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
  /** More image.json fields (spec, specDir, ...). */
  image?: Record<string, unknown>
  /** More `origin node` flags (they override image.json). */
  args?: string[]
}

export interface TestNode {
  name: string
  address: string
  dir: string
  proc: NodeProcess
  logFile: string
  log (): Promise<string>
}

const PORT = 7400

async function canBind (host: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(PORT, host, () => s.close(() => resolve(true)))
  })
}

/** A loopback address nobody on this machine is listening on at PORT. */
export async function freeAddress (): Promise<string> {
  for (;;) {
    const r = () => Math.floor(Math.random() * 250) + 2
    const host = `127.${r()}.${r()}.${r()}`
    if (await canBind(host)) return `${host}:${PORT}`
  }
}

export async function makeKeys (dir: string, cluster = 'test'): Promise<string> {
  await initKeys({ out: dir, cluster })
  await issueOperator({ keys: dir, name: 'op' })
  return dir
}

const sharedKeys = new Map<string, Promise<string>>()
const sharedKeyDirs: string[] = []
process.once('exit', () => { for (const d of sharedKeyDirs) rmSync(d, { recursive: true, force: true }) })

export class TestCluster {
  readonly nodes = new Map<string, TestNode>()
  private clients: Cluster[] = []

  private constructor (readonly dir: string, readonly keys: string, readonly cluster: string) {}

  /** A new cluster with its own temp dir; keys are made once per test file and cluster name (RSA keygen is slow). */
  static async create (o: { cluster?: string } = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(os.tmpdir(), 'origin-test-'))
    const cluster = o.cluster ?? 'test'
    let keys = sharedKeys.get(cluster)
    if (keys === undefined) {
      keys = mkdtemp(join(os.tmpdir(), 'origin-keys-')).then(async (d) => { sharedKeyDirs.push(d); return await makeKeys(d, cluster) })
      sharedKeys.set(cluster, keys)
    }
    return new TestCluster(dir, await keys, cluster)
  }

  node (name: string): TestNode {
    const n = this.nodes.get(name)
    if (n === undefined) throw new Error(`no node ${name} in this test cluster`)
    return n
  }

  /** Write an image dir for `spec` and start a node process from it. */
  async start (spec: NodeSpec): Promise<TestNode> {
    const address = spec.address ?? await freeAddress()
    const dir = join(this.dir, spec.name)
    await mkdir(dir, { recursive: true })
    const first = [...this.nodes.values()][0]
    const seeds = (spec.seeds ?? (first === undefined ? [] : [first.name])).map((s) => this.nodes.get(s)?.address ?? s)
    const image = {
      cluster: this.cluster,
      listen: address,
      seeds,
      data: 'data',
      name: spec.name,
      labels: spec.labels ?? {},
      characteristics: { cpus: spec.cpus ?? 2, memoryMb: spec.memoryMb ?? 1024 },
      membership: spec.membership ?? fastMembership,
      hubs: spec.hubs ?? {},
      log: { level: spec.logLevel ?? 'debug' },
      ...spec.image
    }
    await writeFile(join(dir, 'image.json'), JSON.stringify(image, null, 2))
    const logFile = join(dir, 'out.log')
    const proc = launchNode(['--image', dir, '--keys', spec.keys ?? this.keys, ...(spec.args ?? [])], { logFile })
    const node = { name: spec.name, address, dir, proc, logFile, log: async () => await readFile(logFile, 'utf8').catch(() => '') }
    this.nodes.set(spec.name, node)
    return node
  }

  /** An operator REPL client connected to `name` (closed at cleanup). */
  async client (name: string): Promise<Cluster> {
    const c = await waitFor(async () => await connectCluster({ keys: this.keys, as: 'op', address: this.node(name).address, timeoutMs: 2000 }), { what: `an operator connection to ${name}` })
    this.clients.push(c)
    return c
  }

  /** The member table as `name` sees it, by node name (ids are the names). */
  async view (name: string): Promise<Record<string, NodeRow>> {
    const c = await this.client(name)
    try {
      return Object.fromEntries((await c.nodes()).map((r) => [r.id, r]))
    } finally {
      c.close()
      this.clients = this.clients.filter((x) => x !== c)
    }
  }

  async hubs (name: string): Promise<string[]> {
    const c = await this.client(name)
    try {
      return (await c.hubs()).hubs
    } finally {
      c.close()
      this.clients = this.clients.filter((x) => x !== c)
    }
  }

  /** Wait until every running node sees exactly `expected` (name -> status) for those names. */
  async waitForView (expected: Record<string, string>, o: { on?: string[], timeoutMs?: number } = {}): Promise<void> {
    const observers = o.on ?? [...this.nodes.values()].filter((n) => n.proc.running).map((n) => n.name)
    await Promise.all(observers.map(async (obs) => await waitFor(async () => {
      const view = await this.view(obs)
      return Object.entries(expected).every(([name, status]) => view[name]?.status === status)
    }, { what: `${obs} to see ${JSON.stringify(expected)}`, timeoutMs: o.timeoutMs })))
  }

  /** Runs `fn`; if it throws, the error carries the tail of every node's log, which is what one needs to see why. */
  async explainFailure<T> (fn: () => Promise<T>, lines = 40): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const logs = await Promise.all([...this.nodes.values()].map(async (n) => {
        const tail = (await n.log()).split('\n').filter((l) => !/ debug /.test(l)).slice(-lines).join('\n')
        return `--- ${n.name} (${n.proc.running ? 'running' : 'exited'}) ---\n${tail}`
      }))
      if (err instanceof Error) err.message += `\n${logs.join('\n')}`
      throw err
    }
  }

  async cleanup (): Promise<void> {
    for (const c of this.clients) c.close()
    await Promise.all([...this.nodes.values()].map(async (n) => await n.proc.stop(3000)))
    await rm(this.dir, { recursive: true, force: true })
  }
}
