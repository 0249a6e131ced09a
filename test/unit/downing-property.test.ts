/**
 * Property: in any split of a cluster into two sides, after any crashes, with any timing
 * and message loss, at most one side downs members of the other. The nodes are simulated
 * with the real pieces gossip.ts runs each round (failure detector, table merge, refute,
 * the downing decision and its stability signature); only the network is a model, and for
 * the `lease` strategy the lease engine: reachable from both sides (like an etcd outside
 * the partition), one holder at a time, a crashed holder's lease expiring after LEASE_TTL,
 * and holders keeping it as lease-holder.ts does (until the members they downed are back).
 */
import test from 'ava'
import fc from 'fast-check'
import { FailureDetector } from '../../node/membership/detector'
import { decideDowning, membershipSignature, needsLease, type DowningPolicy, type DowningStrategy, type LeaseFact } from '../../node/membership/downing'
import { markStatus, mergeTables, refute } from '../../node/membership/table'
import type { Member, MemberTable } from '../../node/membership/types'

const SUSPECT = 10
const DEAD = 20
const LEASE_TTL = 15

interface Sim {
  id: string
  self: Member
  table: MemberTable
  detector: FailureDetector
  signature: string
  stableSince: number
  crashed: boolean
  downed: Set<string>
}

interface Scenario {
  n: number
  strategy: DowningStrategy
  quorum: number
  afterMs: number
  /** Per node: the step it crashes at (or never), and its side after the split. */
  crashAt: Array<number | null>
  sideB: boolean[]
  splitAt: number
  loss: number
  startedAt: number[]
  seed: number
  /** Steps to run on after the split heals, if it does. */
  healAt?: number
}

function run (scenario: Scenario): Sim[] {
  const s = { ...scenario }
  const policy: DowningPolicy = { strategy: s.strategy, afterMs: s.afterMs, quorum: s.quorum }
  const ids = Array.from({ length: s.n }, (_, i) => `n${i}`)
  const entry = (i: number): Member => ({ id: ids[i], address: `10.0.0.${i}:7400`, incarnation: 1, heartbeat: 0, status: 'alive', hub: false, characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: s.startedAt[i] } })
  const common: MemberTable = Object.fromEntries(ids.map((id, i) => [id, entry(i)]))
  const nodes: Sim[] = ids.map((id, i) => {
    const detector = new FailureDetector({ suspectAfterMs: SUSPECT, deadAfterMs: DEAD, intervalMs: 1 })
    detector.watching(0)
    detector.observe(common, id, 0)
    return { id, self: common[id], table: common, detector, signature: membershipSignature(common), stableSince: 0, crashed: false, downed: new Set() }
  })
  let rnd = s.seed
  const random = (): number => { rnd = (rnd * 1103515245 + 12345) % 2147483648; return rnd / 2147483648 }
  const commit = (x: Sim, table: MemberTable, now: number): void => {
    x.table = table
    x.detector.observe(table, x.id, now)
    const sig = membershipSignature(table)
    if (sig !== x.signature) { x.signature = sig; x.stableSince = now }
  }
  const hear = (x: Sim, other: MemberTable, now: number): void => {
    const merged = mergeTables(x.table, other)
    x.self = refute(x.self, merged[x.id])
    commit(x, { ...merged, [x.id]: x.self }, now)
  }
  const connected = (a: number, b: number, now: number): boolean =>
    !nodes[a].crashed && !nodes[b].crashed && (now < s.splitAt || s.sideB[a] === s.sideB[b])
  const lease = { holder: undefined as number | undefined, token: 0, renewedAt: 0, keepFor: new Set<string>() }
  const leaseRound = (i: number, now: number): LeaseFact => {
    const x = nodes[i]
    const view = { table: x.table, self: x.id, stableForMs: now - x.stableSince }
    const need = needsLease(view, policy)
    if (lease.holder === i) {
      if (!need && [...lease.keepFor].every((id) => x.table[id].status === 'alive')) lease.holder = undefined
      else lease.renewedAt = now
    } else if (lease.holder === undefined && need) {
      Object.assign(lease, { holder: i, token: lease.token + 1, renewedAt: now, keepFor: new Set() })
    }
    return lease.holder === i ? { held: true, key: 'k', token: lease.token } : { held: false, key: 'k', holder: lease.holder === undefined ? undefined : ids[lease.holder] }
  }
  const end = s.splitAt + s.afterMs + 6 * DEAD
  for (let now = 1; now <= end + (s.healAt ?? 0); now++) {
    if (s.healAt !== undefined && now === end) s.splitAt = Infinity
    nodes.forEach((x, i) => { if (s.crashAt[i] !== null && now >= (s.crashAt[i] as number)) x.crashed = true })
    if (lease.holder !== undefined && nodes[lease.holder].crashed && now - lease.renewedAt > LEASE_TTL) lease.holder = undefined
    for (const [i, x] of nodes.entries()) {
      if (x.crashed) continue
      x.self = { ...x.self, heartbeat: x.self.heartbeat + 1 }
      let next = { ...x.table, [x.id]: x.self }
      for (const [id, status] of x.detector.verdicts(next, x.id, now).marks) next = markStatus(next, id, status)
      commit(x, next, now)
      const fact = policy.strategy === 'lease' ? leaseRound(i, now) : undefined
      const d = decideDowning({ table: x.table, self: x.id, stableForMs: now - x.stableSince, lease: fact }, policy)
      if (d.kind === 'down') {
        if (fact?.held === true) for (const id of d.ids) lease.keepFor.add(id)
        let t = x.table
        for (const id of d.ids) { t = markStatus(t, id, 'left'); x.downed.add(id) }
        commit(x, t, now)
      }
      // Push-pull with two peers it takes for live, and every tenth step with the next of
      // those it takes for dead in turn, as gossip.ts does; a lost exchange changes nothing.
      const live = ids.flatMap((id, j) => j !== i && ['alive', 'suspect'].includes(x.table[id].status) ? [j] : [])
      const dead = ids.flatMap((id, j) => x.table[id].status === 'dead' ? [j] : [])
      const peers = [0, 1].flatMap(() => live.length === 0 ? [] : [live[Math.floor(random() * live.length)]])
      if (dead.length > 0 && now % 10 === i % 10) peers.push(dead[Math.floor(now / 10) % dead.length])
      for (const j of peers) {
        if (!connected(i, j, now) || random() < s.loss) continue
        const y = nodes[j]
        hear(y, x.table, now)
        hear(x, y.table, now)
      }
    }
  }
  return nodes
}

const scenario = fc.integer({ min: 2, max: 7 }).chain((n) => fc.record({
  n: fc.constant(n),
  strategy: fc.constantFrom<DowningStrategy>('keep-majority', 'static-quorum', 'keep-oldest', 'lease'),
  quorum: fc.integer({ min: 1, max: 4 }),
  afterMs: fc.integer({ min: DEAD / 2, max: 4 * DEAD }),
  crashAt: fc.array(fc.option(fc.integer({ min: 1, max: 400 }), { freq: 2 }), { minLength: n, maxLength: n }),
  sideB: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
  splitAt: fc.integer({ min: 1, max: 400 }),
  loss: fc.constantFrom(0, 0.1, 0.3, 0.5),
  startedAt: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: n, maxLength: n }),
  seed: fc.integer({ min: 1, max: 1_000_000 })
}))

test('downing: in any split with any crashes and timing, at most one side downs members of the other', (t) => {
  fc.assert(fc.property(scenario, (s) => {
    const nodes = run(s)
    const live = (i: number): boolean => !nodes[i].crashed
    const downsOther = (side: boolean): boolean => nodes.some((x, i) => live(i) && s.sideB[i] === side &&
      nodes.some((y, j) => live(j) && s.sideB[j] !== side && x.downed.has(y.id)))
    return !(downsOther(true) && downsOther(false))
  }), { numRuns: 300 })
  t.pass()
})

test('downing: with no split, survivors of crashes one at a time keep a majority and down every crashed member', (t) => {
  for (const n of [3, 5]) {
    // Crash all but the lowest id, one at a time, far enough apart for each step to settle.
    const crashAt = Array.from({ length: n }, (_, i) => i === 0 ? null : 50 + (n - i) * (6 * DEAD))
    const nodes = run({ n, strategy: 'keep-majority', quorum: 1, afterMs: 2 * DEAD, crashAt, sideB: Array(n).fill(false), splitAt: 10_000, loss: 0.1, startedAt: Array(n).fill(0), seed: 7 })
    const downed = new Set(nodes.flatMap((x) => [...x.downed]))
    t.deepEqual([...downed].sort(), nodes.slice(1).map((x) => x.id), `${n} nodes`)
    t.true(Object.values(nodes[0].table).every((m) => m.id === 'n0' || m.status === 'left'), `${n} nodes: the survivor's table`)
  }
})

test('downing: with the lease, either of two nodes survives the other\'s crash, and downs it', (t) => {
  for (const survivor of [0, 1]) {
    const nodes = run({ n: 2, strategy: 'lease', quorum: 1, afterMs: 2 * DEAD, crashAt: survivor === 0 ? [null, 50] : [50, null], sideB: [false, false], splitAt: 10_000, loss: 0.1, startedAt: [0, 0], seed: 11 })
    t.deepEqual([...nodes[survivor].downed], [nodes[1 - survivor].id], `n${survivor} downs the other`)
  }
})

test('downing: with the lease, of two sides cut apart exactly one downs the other, whatever the sizes', (t) => {
  fc.assert(fc.property(scenario.filter((s) => s.strategy === 'lease' && s.sideB.some(Boolean) && s.sideB.some((b) => !b)), (s) => {
    const nodes = run({ ...s, crashAt: s.crashAt.map(() => null) })
    const downsOther = (side: boolean): boolean => nodes.some((x, i) => s.sideB[i] === side && nodes.some((y, j) => s.sideB[j] !== side && x.downed.has(y.id)))
    return downsOther(true) !== downsOther(false)
  }), { numRuns: 100 })
  t.pass()
})

test('downing: when the split heals, every live node sees every live node alive again (the downed ones as a new incarnation)', (t) => {
  fc.assert(fc.property(scenario, (s) => {
    // Not with the lease and a crash after the split: the holder may down the other side
    // and crash, its lease expire, and the other side take it and down the holder's
    // surviving side-mates in turn. Both sides then have the other `left`, and only seeds
    // (not in this model) bring them back together. The README says so.
    const crashes = s.strategy === 'lease' ? s.crashAt.map((c) => c === null || c >= s.splitAt ? null : c) : s.crashAt
    // After the heal a node that sees the other side dead reaches each of them once per
    // 10 x (dead members) steps, and at most 3 exchanges in 10 are lost: 40 x DEAD steps
    // give a node with 6 dead members 13 tries at the one that has it `left`, so a run
    // that does not heal is a bug, not bad luck (10 x DEAD gave 3 and failed on a CI run:
    // a side of one among 5 dead, 4 tries, at random then, missed them all).
    const nodes = run({ ...s, crashAt: crashes, loss: Math.min(s.loss, 0.3), healAt: 40 * DEAD })
    const live = nodes.filter((x) => !x.crashed)
    return live.every((x) => live.every((y) => x.table[y.id].status === 'alive'))
  }), { numRuns: 150 })
  t.pass()
})
