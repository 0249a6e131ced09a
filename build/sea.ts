/**
 * Node's single executable applications: the bundle becomes a preparation blob
 * (`node --experimental-sea-config`, made by the same node binary that will run it, since
 * the blob's format is that binary's), and postject injects the blob into a copy of that
 * binary as NODE_SEA_BLOB, flipping the SEA fuse.
 */
import { execFile } from 'node:child_process'
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { OriginError, errorMessage } from '../node/errors'

const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'

export interface SeaOptions {
  /** The bundled program (one CommonJS file). */
  code: string
  /** Files the program reads with `require('node:sea').getAsset(name)`: name -> content. */
  assets?: Record<string, string>
  /** The node binary to copy; it also makes the blob. */
  node: string
  /** The executable to write. */
  out: string
  /** Compile the code at build time (V8 code cache): faster start, bigger file. @default true */
  codeCache?: boolean
}

/** Makes the preparation blob with `node`; returns it. */
export async function makeBlob (o: SeaOptions): Promise<Buffer> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-sea-'))
  try {
    const main = join(dir, 'origin-node.js')
    const output = join(dir, 'origin-node.blob')
    await writeFile(main, o.code)
    const assets: Record<string, string> = {}
    for (const [name, content] of Object.entries(o.assets ?? {})) {
      assets[name] = join(dir, `asset-${Object.keys(assets).length}`)
      await writeFile(assets[name], content)
    }
    const config = { main, output, disableExperimentalSEAWarning: true, useCodeCache: o.codeCache ?? true, assets }
    await writeFile(join(dir, 'sea-config.json'), JSON.stringify(config))
    try {
      await promisify(execFile)(o.node, ['--experimental-sea-config', join(dir, 'sea-config.json')], { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, maxBuffer: 16 * 1024 * 1024 })
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? ''
      throw new OriginError('E_START_FAILED', `${o.node} could not make the single executable blob (Node.js 20.12 or newer is needed): ${stderr.trim() || errorMessage(err)}`)
    }
    return await readFile(output)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Copies `node` to `out` and injects `blob`: `out` is then the program.
 *
 * postject rewrites the file with one write of the whole ~100 MiB. On Linux that leaves the
 * page cache holding the file in large folios, and every process that runs it maps whole
 * folios where it touched a page: an idle node measured 15 MiB more RSS (file pages) from
 * the file as postject wrote it than from a copy of it, until the cache was dropped. So the
 * injection happens on a scratch copy and `out` is written by a plain copy, as a user's
 * `scp` or `docker COPY` would write it. Both files are the owner's only (0700) from before the
 * blob, which may hold node.key, is written; the caller opens `out` up if it holds no keys.
 */
export async function inject (blob: Buffer, o: Pick<SeaOptions, 'node' | 'out'>): Promise<string[]> {
  const scratch = `${o.out}.injecting`
  await copyFile(o.node, scratch)
  await chmod(scratch, 0o700)
  const { inject: postject } = require('postject') as { inject: (file: string, name: string, data: Buffer, opts: object) => Promise<void> }
  // postject's ELF reader prints warnings about note sections that do not matter: keep them for --verbose.
  const said: string[] = []
  const { warn, log } = console
  console.warn = (...a: unknown[]) => { said.push(a.join(' ')) }
  console.log = (...a: unknown[]) => { said.push(a.join(' ')) }
  try {
    await postject(scratch, 'NODE_SEA_BLOB', blob, { sentinelFuse: FUSE, machoSegmentName: 'NODE_SEA' })
    await copyFile(scratch, o.out) // copies the mode too
  } catch (err) {
    await rm(o.out, { force: true })
    throw new OriginError('E_START_FAILED', `injecting the program into ${o.out} failed: ${errorMessage(err)}`)
  } finally {
    console.warn = warn
    console.log = log
    await rm(scratch, { force: true })
  }
  if (process.platform === 'darwin') {
    // The copy's signature no longer matches; macOS runs an ad-hoc signed binary.
    await promisify(execFile)('codesign', ['--sign', '-', o.out]).catch(() => undefined)
  }
  return said
}
