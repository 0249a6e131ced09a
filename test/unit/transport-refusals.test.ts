import test from 'ava'
import type { Logger } from '../../node/log'
import { RefusalLog } from '../../node/transport/refusals'
import { waitFor } from '../helpers/wait'

function capture (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  const log: Logger = { debug () {}, info () {}, warn: (m) => lines.push(m), error: (m) => lines.push(m), child: () => log }
  return { log, lines }
}

test('refusals: the first of each kind is logged in full, the rest counted in one summary line', (t) => {
  const { log, lines } = capture()
  const refusals = new RefusalLog(log, 10_000)
  t.teardown(() => { refusals.stop() })
  for (let i = 0; i < 4991; i++) refusals.refused('no certificate', `refused a connection from 10.0.0.9:${i}: no client certificate`)
  for (let i = 0; i < 10; i++) refusals.refused('another CA', `refused a connection from 10.0.0.8:${i}: certificate "x" refused: another CA`)
  t.deepEqual(lines, [
    'refused a connection from 10.0.0.9:0: no client certificate',
    'refused a connection from 10.0.0.8:0: certificate "x" refused: another CA'
  ])
  refusals.flush()
  t.is(lines[2], 'refused 4,999 more connections in the last 10 s: 4,990 no certificate, 9 another CA')
  refusals.flush()
  t.is(lines.length, 3, 'nothing new, nothing logged')
  refusals.refused('no certificate', 'again')
  refusals.stop()
  t.is(lines[3], 'refused 1 more connection in the last 10 s: 1 no certificate', 'stop logs what is counted')
})

test('refusals: while refusals go on, one summary per interval; after a quiet interval the next is logged in full again', async (t) => {
  const { log, lines } = capture()
  const refusals = new RefusalLog(log, 200)
  t.teardown(() => { refusals.stop() })
  refusals.refused('handshake timeout', 'first')
  refusals.refused('handshake timeout', 'second')
  await waitFor(() => lines.length === 2, { what: 'the summary' })
  t.deepEqual(lines, ['first', 'refused 1 more connection in the last 0.2 s: 1 handshake timeout'])
  refusals.refused('handshake timeout', 'third, in the next interval')
  await waitFor(() => lines.length === 3, { what: 'the next summary' })
  t.is(lines[2], 'refused 1 more connection in the last 0.2 s: 1 handshake timeout')
  await waitFor(() => !refusals.active, { what: 'a quiet interval' })
  t.is(lines.length, 3, 'a quiet interval logs nothing')
  refusals.refused('handshake timeout', 'after a quiet interval')
  t.is(lines[3], 'after a quiet interval')
})
