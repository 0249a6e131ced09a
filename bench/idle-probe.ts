import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { memoryMiB } from './floor'
import { defaultConfig } from '../node/config'

async function main (): Promise<void> {
  const defaults: Record<string, number> = defaultConfig().membership
  const c = await TestCluster.create({ cluster: 'probe' })
  try {
    const names = ['n1', 'n2', 'n3']
    await c.start({ name: 'n1', membership: defaults, logLevel: 'info', args: (process.env.PROBE_ARGS ?? '').split(' ').filter(Boolean) })
    for (const n of names.slice(1)) await c.start({ name: n, seeds: ['n1'], membership: defaults, logLevel: 'info' })
    const cl = await c.client('n1')
    await waitFor(async () => (await cl.nodes()).filter((r) => r.status === 'alive').length === 3, { timeoutMs: 30_000, what: 'form' })
    cl.close()
    const t0 = Date.now()
    for (const at of (process.env.PROBE_AT ?? '3,30,60,120').split(',').map(Number)) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at * 1000 - (Date.now() - t0))))
      const m = await Promise.all(names.map(async (n) => await memoryMiB(c.node(n).proc.pid)))
      console.log(`${at}s`, m.map((x) => `${x.rss.toFixed(1)}(${x.private.toFixed(1)})`).join(' '))
    }
  } finally { await c.cleanup() }
}
void main()
