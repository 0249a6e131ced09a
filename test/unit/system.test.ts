import test from 'ava'
import { OriginError } from '../../node/errors'
import type { Logger } from '../../node/log'
import { System, type NamedComponent } from '../../node/system'

/** A logger that keeps its lines, to check what was said. */
function recordingLogger (): Logger & { lines: string[] } {
  const lines: string[] = []
  const make = (scope: string): Logger => ({
    debug: (m) => { lines.push(`debug ${scope}: ${m}`) },
    info: (m) => { lines.push(`info ${scope}: ${m}`) },
    warn: (m) => { lines.push(`warn ${scope}: ${m}`) },
    error: (m) => { lines.push(`error ${scope}: ${m}`) },
    child: (sub) => make(`${scope}/${sub}`)
  })
  return Object.assign(make('system'), { lines })
}

interface Fail { start?: boolean, stop?: boolean }

/** Components that record `start a`, `stop a`, ... into `events`, and fail where told. */
function components (events: string[], names: string[], fail: Record<string, Fail> = {}): NamedComponent[] {
  return names.map((name) => ({
    name,
    component: {
      async start () {
        await Promise.resolve()
        if (fail[name]?.start === true) throw new Error(`${name} cannot bind`)
        events.push(`start ${name}`)
      },
      async stop () {
        await Promise.resolve()
        if (fail[name]?.stop === true) throw new Error(`${name} is stuck`)
        events.push(`stop ${name}`)
      }
    }
  }))
}

test('system: components start in order and stop in reverse', async (t) => {
  const events: string[] = []
  const system = new System(components(events, ['keys', 'transport', 'membership', 'hubs']), recordingLogger())
  await system.start()
  t.deepEqual(events, ['start keys', 'start transport', 'start membership', 'start hubs'])
  events.length = 0
  await system.stop()
  t.deepEqual(events, ['stop hubs', 'stop membership', 'stop transport', 'stop keys'])
})

test('system: start twice and stop twice are no-ops, and a stopped system starts again', async (t) => {
  const events: string[] = []
  const system = new System(components(events, ['a', 'b']), recordingLogger())
  await system.start()
  await system.start()
  t.deepEqual(events, ['start a', 'start b'])
  await system.stop()
  await system.stop()
  t.deepEqual(events, ['start a', 'start b', 'stop b', 'stop a'])
  await system.start()
  await system.stop()
  t.deepEqual(events.slice(4), ['start a', 'start b', 'stop b', 'stop a'])
})

test('system: a failing start stops what started in reverse, skips the rest, and names the component', async (t) => {
  const events: string[] = []
  const log = recordingLogger()
  const system = new System(components(events, ['a', 'b', 'c', 'd'], { c: { start: true } }), log)
  const err = await t.throwsAsync(system.start(), { instanceOf: OriginError })
  t.is((err as OriginError).code, 'E_START_FAILED')
  t.is(err.message, 'c failed to start: c cannot bind')
  t.deepEqual((err as OriginError).data, { component: 'c' })
  t.deepEqual(events, ['start a', 'start b', 'stop b', 'stop a'], 'd never started; c is not stopped')
  t.true(log.lines.some((l) => l.startsWith('error') && l.includes('c failed to start: c cannot bind')))
  events.length = 0
  await system.stop()
  t.deepEqual(events, [], 'nothing is left running to stop')
})

test('system: a failing first component starts nothing else', async (t) => {
  const events: string[] = []
  const system = new System(components(events, ['a', 'b'], { a: { start: true } }), recordingLogger())
  const err = await t.throwsAsync(system.start())
  t.like((err as OriginError).data, { component: 'a' })
  t.deepEqual(events, [])
})

test('system: a failing stop is logged and the others still stop', async (t) => {
  const events: string[] = []
  const log = recordingLogger()
  const system = new System(components(events, ['a', 'b', 'c'], { b: { stop: true } }), log)
  await system.start()
  events.length = 0
  await t.notThrowsAsync(system.stop())
  t.deepEqual(events, ['stop c', 'stop a'])
  t.deepEqual(log.lines.filter((l) => l.startsWith('error')), ['error system: b failed to stop cleanly: b is stuck'])
})

test('system: a component that fails to stop during a rolled-back start does not hide the start failure', async (t) => {
  const events: string[] = []
  const log = recordingLogger()
  const system = new System(components(events, ['a', 'b', 'c'], { a: { stop: true }, c: { start: true } }), log)
  const err = await t.throwsAsync(system.start())
  t.is((err as OriginError).code, 'E_START_FAILED')
  t.like((err as OriginError).data, { component: 'c' })
  t.deepEqual(events, ['start a', 'start b', 'stop b'])
  t.true(log.lines.includes('error system: a failed to stop cleanly: a is stuck'))
})
