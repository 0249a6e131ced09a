import test from 'ava'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { MAX_LINE_BYTES, RotatingLog, lineStamper, logParts, readLog, stampLine } from '../../node/logfile'

async function tempDir (t: { teardown (fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-logfile-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

const at = new Date('2026-11-22T16:30:00.123Z')

test('logfile: complete lines are stamped with the time and the stream, partial ones wait', (t) => {
  const lines: string[] = []
  const out = lineStamper('out', (l) => lines.push(l), () => at.getTime())
  out(Buffer.from('hel'))
  t.deepEqual(lines, [])
  out(Buffer.from('lo\nworld\r\nand a'))
  t.deepEqual(lines, ['2026-11-22T16:30:00.123Z out hello', '2026-11-22T16:30:00.123Z out world'])
  out(Buffer.from(' tail'))
  out.end()
  t.is(lines[2], '2026-11-22T16:30:00.123Z out and a tail')
  t.is(lines.length, 3)
})

test('logfile: the err stream is named err', (t) => {
  const lines: string[] = []
  const err = lineStamper('err', (l) => lines.push(l), () => at.getTime())
  err(Buffer.from('boom\n'))
  t.deepEqual(lines, ['2026-11-22T16:30:00.123Z err boom'])
})

test('logfile: a line longer than 64 KiB is split, never cutting a character', (t) => {
  const lines: string[] = []
  const out = lineStamper('out', (l) => lines.push(l), () => at.getTime())
  const long = 'é'.repeat(MAX_LINE_BYTES) // 2 bytes each: 128 KiB
  out(Buffer.from(long + '\nafter\n'))
  const texts = lines.map((l) => l.slice('2026-11-22T16:30:00.123Z out '.length))
  t.true(texts.length >= 3)
  t.is(texts.slice(0, -1).join(''), long)
  t.true(texts.slice(0, -1).every((s) => Buffer.byteLength(s) <= MAX_LINE_BYTES && !s.includes('\ufffd')))
  t.is(texts[texts.length - 1], 'after')
})

test('logfile: rotation keeps N parts and readLog returns the lines oldest first', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'x.log')
  const log = new RotatingLog({ path, maxBytes: 200, keep: 2 })
  const line = (i: number): string => stampLine('out', `line ${String(i).padStart(3, '0')}`, at.getTime() + i * 1000)
  for (let i = 0; i < 40; i++) log.write(line(i)) // ~40 bytes each: ~5 lines per part
  await log.close()
  const parts = await logParts(path)
  t.deepEqual(parts, [join(dir, 'x.log.2'), join(dir, 'x.log.1'), join(dir, 'x.log')])
  for (const p of parts) t.true((await readFile(p)).length <= 200)
  const lines = (await readLog(path)).trimEnd().split('\n')
  t.is(lines[lines.length - 1], line(39))
  const numbers = lines.map((l) => Number(l.slice(-3)))
  t.deepEqual(numbers, numbers.map((_, k) => numbers[0]! + k), 'consecutive, oldest first')
  t.true(numbers[0]! > 0, 'the oldest lines fell off')
})

test('logfile: readLog keeps the last N lines across parts', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'x.log')
  const log = new RotatingLog({ path, maxBytes: 100, keep: 5 })
  for (let i = 0; i < 12; i++) log.write(stampLine('out', `n${i}`, at.getTime()))
  await log.close()
  t.true((await logParts(path)).length > 2)
  const last = (await readLog(path, { lines: 4 })).trimEnd().split('\n')
  t.deepEqual(last.map((l) => l.split(' ')[2]), ['n8', 'n9', 'n10', 'n11'])
  t.is(await readLog(path, { lines: 0 }), '')
})

test('logfile: readLog since keeps the lines stamped at or after the time', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'x.log')
  const log = new RotatingLog({ path, maxBytes: 120, keep: 5 })
  for (let i = 0; i < 10; i++) log.write(stampLine(i % 2 === 0 ? 'out' : 'err', `s${i}`, at.getTime() + i * 60_000))
  await log.close()
  const since = new Date(at.getTime() + 6 * 60_000)
  const kept = (await readLog(path, { since })).trimEnd().split('\n')
  t.deepEqual(kept.map((l) => l.split(' ')[2]), ['s6', 's7', 's8', 's9'])
  const both = (await readLog(path, { since, lines: 2 })).trimEnd().split('\n')
  t.deepEqual(both.map((l) => l.split(' ')[2]), ['s8', 's9'])
})

test('logfile: a log that was never written reads as empty', async (t) => {
  const dir = await tempDir(t)
  t.deepEqual(await logParts(join(dir, 'none.log')), [])
  t.is(await readLog(join(dir, 'none.log'), { lines: 10 }), '')
  t.is(await readLog(join(dir, 'missing-dir', 'none.log')), '')
})

test('logfile: writing after close reopens the file and appends', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'sub', 'x.log')
  const log = new RotatingLog({ path })
  log.write(stampLine('origin', 'first', at.getTime()))
  await log.close()
  log.write(stampLine('origin', 'second', at.getTime()) + '\n')
  await log.close()
  t.is(await readFile(path, 'utf8'), `${stampLine('origin', 'first', at.getTime())}\n${stampLine('origin', 'second', at.getTime())}\n`)
})
