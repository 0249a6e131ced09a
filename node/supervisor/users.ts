/**
 * users: when the node is root, each service's instances run as a user of their own, so a
 * service cannot read another's environment (the kernel lets only a process's owner read
 * /proc/<pid>/environ), nor the node's keys, logs and data; it writes only its own state
 * and temp directories and reads its code.
 *
 * - Ids: one per service from a range (61000-65000 by default; gid = uid), first guess a
 *   hash of the name, the next free one on a clash, recorded in DATA/users.json so it never
 *   changes (its files stay its own). No /etc/passwd entry is needed; ids that /etc/passwd
 *   or /etc/group use are skipped.
 * - Before each launch: the state dir is chowned to the service (`chown -R`, which does not
 *   follow symbolic links; a restored copy arrives owned by root), the code tree's top
 *   becomes root:<gid> 0750 (readable, not writable, by that service only), and a fresh
 *   DATA/tmp/<instance> (0700) is its TMPDIR (all emptied when the node starts); HOME is
 *   the state dir. An instance with a port below 1024 (pinned by its spec) keeps the one
 *   capability to bind it.
 * - The node's own files: DATA is 0711 (no listing; instances pass through to state/,
 *   code/ and tmp/, each 0711), every other entry of DATA loses its permissions for others
 *   (node.log, logs/, run/, spec/, ...; watched, so a rotated log is closed at once),
 *   directories above DATA get search permission for others where they lack it (said in
 *   the log), and in the image dir (DATA's parent holding image.json) image.json, keys/
 *   and secrets/ lose theirs, as does the secrets folder.
 *
 * @example
 *   const users = await instanceUsers({ containment, dataDir, secretsDir, log })   // undefined unless root
 *   const user = await users?.prepare({ service: 'web', instance: 'web-0', stateDir, codeDir })
 *   new ManagedProcess({ ..., containment, user })
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { chmod, chown, lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { writeJsonAtomic } from '../files'
import { dirname, join } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import { findExecutable, type Containment, type InstanceUser } from './contain'

export interface UidRange {
  /** @default 61000 */
  first: number
  /** @default 65000 */
  last: number
}

export const defaultUidRange: UidRange = { first: 61000, last: 65000 }

export interface UsersInit {
  containment: Containment
  dataDir: string
  /** Where uids come from. A service keeps the uid it was given, also when the range changes. @default 61000-65000 */
  range?: UidRange
  /** The image's secrets folder: closed to others. */
  secretsDir?: string
  log: Logger
}

/** Entries of DATA that instances pass through (to their state dir, code tree, temp dir). */
const PASSAGES = new Set(['state', 'code', 'tmp'])

/** The service users of this node, or undefined when instances run as the node's user (not root, no setpriv). */
export async function instanceUsers (init: UsersInit): Promise<InstanceUsers | undefined> {
  if (!init.containment.users) return undefined
  const users = new InstanceUsers(init.dataDir, init.range ?? defaultUidRange, init.log, init.secretsDir)
  await users.open()
  return users
}

export class InstanceUsers {
  private map: Record<string, number> = {}
  private taken = new Set<number>()
  private queue: Promise<unknown> = Promise.resolve()
  private watcher?: FSWatcher
  private readonly chownBin = findExecutable('chown') ?? 'chown'

  constructor (readonly dataDir: string, readonly range: UidRange, private readonly log: Logger, private readonly secretsDir?: string) {
    if (!Number.isInteger(range.first) || !Number.isInteger(range.last) || range.first < 1000 || range.last < range.first || range.last > 0xfffffffe) {
      throw new OriginError('E_CONFIG_INVALID', `uid range ${range.first}-${range.last}: needs integers, 1000 <= first <= last`)
    }
  }

  get file (): string { return join(this.dataDir, 'users.json') }

  /** Loads the recorded ids and closes the node's files to instances. */
  async open (): Promise<void> {
    this.map = await readMap(this.file)
    this.taken = await systemIds()
    // Temp dirs of a previous run: nothing of it runs any more (endLeftovers ended it).
    await rm(join(this.dataDir, 'tmp'), { recursive: true, force: true })
    const lines = await protectNodeFiles(this.dataDir, this.secretsDir)
    for (const line of lines) this.log.info(line)
    this.log.info(`services run as users of their own: uids ${this.range.first}-${this.range.last}, recorded in ${this.file}`)
    try {
      // A rotated node.log, a directory another layer makes later: closed as soon as it appears.
      this.watcher = watch(this.dataDir, (event, name) => { if (event === 'rename' && name !== null) void this.protectEntry(name) })
      this.watcher.on('error', (err) => { this.log.warn(`cannot watch ${this.dataDir}: ${errorMessage(err)}; its new entries are closed at the next launch`) })
      this.watcher.unref()
    } catch (err) {
      this.log.warn(`cannot watch ${this.dataDir}: ${errorMessage(err)}; its new entries are closed at the next launch`)
    }
  }

  close (): void {
    this.watcher?.close()
    this.watcher = undefined
  }

  /** The uid recorded for `service`, if it has one (nothing is recorded by asking). */
  recorded (service: string): number | undefined {
    return Object.hasOwn(this.map, service) ? this.map[service] : undefined
  }

  /** The uid of `service`: the recorded one, else a new one (recorded before it is returned). */
  async uidFor (service: string): Promise<number> {
    const known = this.map[service]
    if (known !== undefined) return known
    return await this.serial(async () => {
      if (this.map[service] !== undefined) return this.map[service]
      const uid = pickUid(service, this.range, new Set([...Object.values(this.map), ...this.taken]))
      if (uid === undefined) throw new OriginError('E_START_FAILED', `no free uid left in ${this.range.first}-${this.range.last} for service ${service}`, { service })
      const next = { ...this.map, [service]: uid }
      await writeMap(this.file, next)
      this.map = next
      this.log.info(`service ${service} runs as uid ${uid}`)
      return uid
    })
  }

  /**
   * Makes the instance's directories its user's, just before it starts (nothing of it runs):
   * the state dir (recursively), the top of its code tree, a fresh temp dir.
   */
  async prepare (o: { service: string, instance: string, stateDir: string, codeDir: string, ports?: Array<[string, number]> }): Promise<InstanceUser> {
    const uid = await this.uidFor(o.service)
    const gid = uid
    await this.protect()
    await run(this.chownBin, ['-R', '-P', `${uid}:${gid}`, o.stateDir])
    await chmod(o.stateDir, 0o700)
    const code = await stat(o.codeDir)
    await chown(o.codeDir, code.uid, gid)
    await chmod(o.codeDir, 0o750)
    const tmpRoot = join(this.dataDir, 'tmp')
    await mkdir(tmpRoot, { recursive: true, mode: 0o711 })
    const tmpDir = join(tmpRoot, fileName(o.instance))
    await rm(tmpDir, { recursive: true, force: true })
    await mkdir(tmpDir, { mode: 0o700 })
    await chown(tmpDir, uid, gid)
    // A port below 1024 is one a spec pinned (`"port": 80`): as root it could bind it, so it still can.
    const lowPorts = (o.ports ?? []).some(([, port]) => port < 1024)
    return { uid, gid, home: o.stateDir, tmpDir, ...(lowPorts ? { lowPorts } : {}) }
  }

  /** The sweep of protectNodeFiles over DATA's entries again (cheap: one directory). */
  async protect (): Promise<void> {
    for (const name of await readdir(this.dataDir).catch(() => [] as string[])) await this.protectEntry(name)
  }

  private async protectEntry (name: string): Promise<void> {
    try {
      await closeEntry(join(this.dataDir, name), PASSAGES.has(name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`cannot close ${join(this.dataDir, name)} to instances: ${errorMessage(err)}`)
    }
  }

  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn)
    this.queue = p.catch(() => undefined)
    return await p
  }
}

/**
 * The uid for `service` in `range`, none of `used`: a hash of the name first (so nodes
 * usually agree), then the next free one, wrapping around. Pure.
 */
export function pickUid (service: string, range: UidRange, used: ReadonlySet<number>): number | undefined {
  const size = range.last - range.first + 1
  const start = createHash('sha256').update(service).digest().readUInt32BE(0) % size
  for (let i = 0; i < size; i++) {
    const uid = range.first + ((start + i) % size)
    if (!used.has(uid)) return uid
  }
  return undefined
}

/**
 * Closes the node's files to instances, returning what it changed in words. DATA 0711;
 * its entries closed to others but the passages (state, code, tmp: search only);
 * code/repos closed; directories above DATA searchable; the image's secrets closed.
 */
export async function protectNodeFiles (dataDir: string, secretsDir?: string): Promise<string[]> {
  const said: string[] = []
  const opened: string[] = []
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    const st = await stat(dir)
    if ((st.mode & 0o001) === 0) {
      await chmod(dir, (st.mode & 0o7777) | 0o001)
      opened.push(`${dir} (now ${mode((st.mode & 0o777) | 0o001)})`)
    }
    if (dirname(dir) === dir) break
  }
  if (opened.length > 0) said.push(`gave others search permission (not listing) on ${opened.join(', ')}, so instances reach their directories in ${dataDir}`)
  await chmod(dataDir, 0o711)
  // An entry may go between readdir and closeEntry (health's probe file comes and goes).
  for (const name of await readdir(dataDir)) await closeEntry(join(dataDir, name), PASSAGES.has(name)).catch(ignoreMissing)
  await closeEntry(join(dataDir, 'code', 'repos'), false).catch(ignoreMissing)
  const image = dirname(dataDir)
  const closed: string[] = []
  if (await exists(join(image, 'image.json'))) {
    for (const name of ['image.json', 'keys', 'secrets']) if (await closeEntry(join(image, name), false).catch(ignoreMissing) === true) closed.push(join(image, name))
  }
  if (secretsDir !== undefined && await closeEntry(secretsDir, false).catch(ignoreMissing) === true) closed.push(secretsDir)
  if (closed.length > 0) said.push(`closed to others: ${closed.join(', ')}`)
  return said
}

/** No permissions for others on `path` (a passage keeps search permission only); true when it changed anything. Symbolic links are left alone. */
async function closeEntry (path: string, passage: boolean): Promise<boolean> {
  const st = await lstat(path)
  if (st.isSymbolicLink()) return false
  const want = passage && st.isDirectory() ? (st.mode & 0o7770) | 0o001 : st.mode & 0o7770
  if ((st.mode & 0o7777) === want) return false
  await chmod(path, want)
  return true
}

function ignoreMissing (err: unknown): undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
  throw err
}

async function exists (path: string): Promise<boolean> {
  return await lstat(path).then(() => true, () => false)
}

function mode (m: number): string {
  return '0' + m.toString(8)
}

/** An instance id as one path segment. */
function fileName (instance: string): string {
  return instance.replace(/[^A-Za-z0-9_@-]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'))
}

async function readMap (file: string): Promise<Record<string, number>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  const v = JSON.parse(text) as { services?: Record<string, unknown> }
  const out: Record<string, number> = {}
  for (const [name, uid] of Object.entries(v.services ?? {})) {
    if (typeof uid !== 'number' || !Number.isInteger(uid) || uid <= 0) throw new OriginError('E_CONFIG_INVALID', `${file}: the uid of ${name} is not a positive integer`, { file })
    out[name] = uid
  }
  return out
}

async function writeMap (file: string, map: Record<string, number>): Promise<void> {
  await writeJsonAtomic(file, { v: 1, services: map })
}

/** Ids the system's /etc/passwd and /etc/group give to someone. */
async function systemIds (): Promise<Set<number>> {
  const ids = new Set<number>()
  for (const file of ['/etc/passwd', '/etc/group']) {
    const text = await readFile(file, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      const id = Number(line.split(':')[2])
      if (line !== '' && Number.isInteger(id)) ids.add(id)
    }
  }
  return ids
}

async function run (command: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(command, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err === null) resolve()
      else reject(new Error(`${command} ${args.join(' ')}: ${String(stderr).trim() || err.message}`))
    })
  })
}
