/**
 * A test cluster whose nodes take their spec from a watched directory: write a file and
 * every node reloads it. Helpers read what `cluster.services()` says.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join } from 'node:path'
import type { InstanceView } from '../../node/control/services'
import type { ServicesReport } from '../../repl/render'
import { TestCluster } from './cluster'
import { waitFor } from './wait'

export interface SpecDirCluster {
  c: TestCluster
  /** The spec directory the nodes watch. */
  dir: string
  /** Write `value` as JSON (or a string as is) at `path` in the spec directory. */
  write (path: string, value: unknown, mode?: number): Promise<void>
  remove (path: string): Promise<void>
  services (on: string): Promise<ServicesReport>
  /** Instances of `name` as node `on` reports them, in `state` if given. */
  instances (on: string, name: string, state?: string): Promise<InstanceView[]>
  /** Waits for `count` instances of `name` in `state` (default ready). */
  waitInstances (on: string, name: string, count: number, state?: string): Promise<InstanceView[]>
}

export async function specDirCluster (t: { teardown (fn: () => Promise<void>): void }, cluster: Record<string, unknown> = {}): Promise<SpecDirCluster> {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-spec-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'services'))
  const write = async (path: string, value: unknown, mode?: number): Promise<void> => {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), typeof value === 'string' ? value : JSON.stringify(value, null, 2))
    if (mode !== undefined) await chmod(join(dir, path), mode)
  }
  await write('cluster.json', { name: 'test', minNodes: 1, hubs: { count: 2 }, ...cluster })
  const services = async (on: string): Promise<ServicesReport> => {
    const client = await c.client(on)
    try { return await client.services() } finally { client.close() }
  }
  const instances = async (on: string, name: string, state?: string): Promise<InstanceView[]> =>
    ((await services(on)).services.find((x) => x.name === name)?.instances ?? []).filter((i) => state === undefined || i.state === state)
  return {
    c,
    dir,
    write,
    remove: async (path) => { await rm(join(dir, path), { force: true, recursive: true }) },
    services,
    instances,
    waitInstances: async (on, name, count, state = 'ready') => await waitFor(async () => {
      const r = await instances(on, name, state)
      return r.length === count ? r : undefined
    }, { what: `${count} ${state} instances of ${name} (as ${on} sees it)` })
  }
}
