/**
 * The engine answers a build or a load with a stream of JSON lines (progress text, or an
 * error that ends it, still under HTTP 200). This reads such a stream to its end into a
 * log file and says how it ended.
 */
import { StringDecoder } from 'node:string_decoder'
import type { FileHandle } from 'node:fs/promises'
import { loadedImages, progressLine } from './images-names'

export interface StreamEnd {
  /** The images a load reported (`Loaded image: ...`). */
  loaded: string[]
  /** The engine's error, if one ended the stream. */
  error?: string
  /** The last `Step n/m : ...` line before the end: where a build stopped. */
  step?: string
}

/** Reads the engine's progress stream to its end, appending its text to `log`; `end` holds what was seen, also when the stream breaks. */
export async function followProgress (stream: NodeJS.ReadableStream, log: FileHandle, end: StreamEnd = { loaded: [] }): Promise<StreamEnd> {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  let writes = Promise.resolve()
  const take = (line: string): void => {
    if (line.trim() === '') return
    const p = progressLine(line)
    if (p.error !== undefined && end.error === undefined) end.error = p.error.trim()
    const text = p.text ?? (p.error === undefined ? '' : `ERROR: ${p.error.trim()}\n`)
    if (text === '') return
    end.loaded.push(...loadedImages(text))
    for (const l of text.split('\n')) if (/^Step \d+\/\d+ : /.test(l)) end.step = l.trim()
    writes = writes.then(async () => { await log.write(text) })
  }
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer | string) => {
      pending += typeof chunk === 'string' ? chunk : decoder.write(chunk)
      const lines = pending.split('\n')
      pending = lines.pop() as string
      for (const line of lines) take(line)
    })
    stream.once('end', () => resolve())
    stream.once('close', () => resolve())
    stream.once('error', reject)
  })
  take(pending + decoder.end())
  await writes
  return end
}
