/**
 * What a node is made of before any layer starts: its id (kept in the data dir, so it is
 * stable across restarts) and its characteristics (measured, or declared by image.json:
 * a container sees the host's memory, not its limit).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from './errors'
import type { Characteristics } from './membership'
import { isNodeId } from './vocabulary'

/** The node id stored in `dataDir/node-id`; on first start `preferred` or a new random one. */
export async function loadNodeId (dataDir: string, preferred?: string): Promise<string> {
  await mkdir(dataDir, { recursive: true })
  const file = join(dataDir, 'node-id')
  const stored = await readFile(file, 'utf8').then((s) => s.trim(), () => undefined)
  if (stored !== undefined) {
    if (!isNodeId(stored)) throw new OriginError('E_CONFIG_INVALID', `${file} holds an invalid node id "${stored}"`, { file })
    return stored
  }
  const id = preferred ?? `node-${randomBytes(3).toString('hex')}`
  await writeFile(file, id + '\n', { flag: 'wx' })
  return id
}

export function measureCharacteristics (declared: { cpus?: number, memoryMb?: number }, labels: Record<string, string>, startedAt: number): Characteristics {
  return {
    cpus: declared.cpus ?? os.availableParallelism(),
    memoryMb: declared.memoryMb ?? Math.round(os.totalmem() / 2 ** 20),
    arch: process.arch,
    labels,
    startedAt
  }
}
