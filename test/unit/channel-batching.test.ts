/**
 * The websocket channel's batching (node/transport/channel.ts): a lone frame in a loop turn
 * is written at once, without corking the TLS socket; frames that follow it in the same turn
 * are held and leave together once the turn's reads are handled, or at FLUSH_BYTES.
 */
import test from 'ava'
import type { Socket } from 'node:net'
import type WebSocket from 'ws'
import { wsChannel } from '../../node/transport/channel'

/** A socket and a ws that record what the channel does to them, in order. */
function fakes (): { log: string[], ws: WebSocket, socket: Socket } {
  const log: string[] = []
  let corks = 0
  const socket = {
    cork () { corks++; log.push('cork') },
    uncork () { corks--; log.push('uncork') }
  } as unknown as Socket
  const ws = {
    OPEN: 1,
    readyState: 1,
    send (b: Buffer) { log.push(corks > 0 ? `held ${b.length}` : `write ${b.length}`) }
  } as unknown as WebSocket
  return { log, ws, socket }
}

const turnEnds = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))
const peer = { role: 'operator' as const, name: 'op', cluster: 'c', serial: '01', remote: 'x' }

function sendOn (ch: ReturnType<typeof wsChannel>, n: number): void {
  ch.batch()
  ch.send(Buffer.alloc(n))
}

test('channel: one frame a turn is written at once and never corks', async (t) => {
  const { log, ws, socket } = fakes()
  const ch = wsChannel(ws, peer, socket)
  for (let i = 1; i <= 3; i++) {
    sendOn(ch, i)
    await turnEnds()
  }
  t.deepEqual(log, ['write 1', 'write 2', 'write 3'])
})

test('channel: frames after the first in a turn are held and leave together when the turn ends', async (t) => {
  const { log, ws, socket } = fakes()
  const ch = wsChannel(ws, peer, socket)
  sendOn(ch, 1)
  sendOn(ch, 2)
  sendOn(ch, 3)
  t.deepEqual(log, ['write 1', 'cork', 'held 2', 'held 3'])
  await turnEnds()
  t.deepEqual(log, ['write 1', 'cork', 'held 2', 'held 3', 'uncork'])
  sendOn(ch, 4)
  t.is(log.at(-1), 'write 4', 'a new turn starts uncorked')
})

test('channel: a held batch that reaches 64 KiB is written at once, and batching goes on', async (t) => {
  const { log, ws, socket } = fakes()
  const ch = wsChannel(ws, peer, socket)
  sendOn(ch, 1)
  sendOn(ch, 40_000)
  sendOn(ch, 30_000)
  t.deepEqual(log, ['write 1', 'cork', 'held 40000', 'held 30000', 'uncork'])
  sendOn(ch, 5)
  sendOn(ch, 6)
  await turnEnds()
  t.deepEqual(log.slice(5), ['cork', 'held 5', 'held 6', 'uncork'])
})

test('channel: without the TLS socket frames are written one by one', async (t) => {
  const { log, ws } = fakes()
  const ch = wsChannel(ws, peer)
  sendOn(ch, 1)
  sendOn(ch, 2)
  await turnEnds()
  t.deepEqual(log, ['write 1', 'write 2'])
})
