/**
 * A docker daemon of the test's own: data root, exec root and socket under a temp dir, no
 * bridge, no iptables (containers use the host network and loopback addresses only). Tests
 * that need one skip with `dockerSkipReason()` where it cannot run (no docker.io, not root).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { chmod, copyFile, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { waitFor } from './wait'

export interface Run { code: number, stdout: string, stderr: string }

export async function run (command: string, args: string[], o: { env?: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number } = {}): Promise<Run> {
  return await new Promise((resolve, reject) => {
    execFile(command, args, { timeout: o.timeoutMs ?? 120_000, env: o.env ?? process.env, cwd: o.cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') { reject(err); return }
      resolve({ code: err === null ? 0 : err.code as number, stdout, stderr })
    })
  })
}

export const dockerdPath = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p))
export const dockerClientPath = ['/usr/bin/docker', '/usr/local/bin/docker'].find((p) => existsSync(p))

/** Why container tests cannot run here, or undefined when they can (dockerd may still fail to start: see Daemon.failure). */
export function dockerSkipReason (): string | undefined {
  if (dockerdPath === undefined || dockerClientPath === undefined) return "no dockerd or docker client (Debian's docker.io; .ci/run installs it)"
  if (process.getuid?.() !== 0) return 'dockerd needs root'
  return undefined
}

export interface Daemon {
  /** The daemon's socket path (for dockerode: `new Docker({ socketPath })`). */
  socket: string
  /** The docker CLI against this daemon, for test setup only (origin itself uses the Engine API). */
  docker: (...args: string[]) => Promise<Run>
  stop: () => Promise<void>
  /** Set when the daemon did not come up: the last errors of its log. */
  failure?: string
}

/** A dockerd with its data root, exec root and socket under `dir`; no bridge, no iptables. */
export async function startDockerd (dir: string): Promise<Daemon> {
  const socket = join(dir, 'docker.sock')
  const log = join(dir, 'dockerd.log')
  const fd = openSync(log, 'a')
  const child: ChildProcess = spawn(dockerdPath as string, [
    '--data-root', join(dir, 'root'), '--exec-root', join(dir, 'x'), '--pidfile', join(dir, 'dockerd.pid'),
    '-H', `unix://${socket}`, '--bridge=none', '--iptables=false', '--ip6tables=false', '--storage-driver', 'vfs'
  ], { stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const exited = new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.once('error', () => resolve()) })
  const docker = async (...args: string[]): Promise<Run> => await run(dockerClientPath as string, ['-H', `unix://${socket}`, ...args], { env: { ...process.env, DOCKER_BUILDKIT: '0' }, timeoutMs: 180_000 })
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
    // dockerd leaves its network namespace file mounted; unmount whatever is left under dir.
    const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(dir))
    for (const m of mounts.sort().reverse()) await run('umount', ['-l', m]).catch(() => undefined)
  }
  try {
    await waitFor(async () => (await docker('version')).code === 0, { what: 'dockerd', timeoutMs: 30_000, intervalMs: 250 })
  } catch {
    await stop()
    return { socket, docker, stop, failure: (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => /level=(error|fatal)/.test(l)).slice(-3).join('\n') || 'dockerd did not answer in 30 s' }
  }
  return { socket, docker, stop }
}

/** The host's static busybox (Debian's busybox-static), which the tests' tiny images are made of. */
export const busyboxPath = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p))

/**
 * `docker import` as `name` of a root filesystem made in `dir`: the host's static busybox,
 * linked under the tools the tests use (sh, httpd, nc, sleep, ...), an empty /tmp, and
 * `files` (path in the image -> content). No registry is reached.
 */
export async function importBusybox (daemon: Daemon, dir: string, name: string, files: Record<string, string> = {}): Promise<void> {
  if (busyboxPath === undefined) throw new Error("no static busybox (Debian's busybox-static; .ci/run installs it)")
  const rootfs = await mkdtemp(join(dir, 'rootfs-'))
  // The image's / is this dir: open to the instances' own users, as a root filesystem is.
  await chmod(rootfs, 0o755)
  await mkdir(join(rootfs, 'bin'), { recursive: true })
  await mkdir(join(rootfs, 'tmp'))
  await copyFile(busyboxPath, join(rootfs, 'bin', 'busybox'))
  for (const tool of ['sh', 'httpd', 'nc', 'sleep', 'cat', 'echo', 'env', 'id', 'false', 'true', 'ls']) await symlink('busybox', join(rootfs, 'bin', tool))
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(rootfs, path)), { recursive: true })
    await writeFile(join(rootfs, path), content)
  }
  const tar = `${rootfs}.tar`
  const packed = await run('tar', ['-C', rootfs, '-cf', tar, '.'])
  if (packed.code !== 0) throw new Error(`tar: ${packed.stderr}`)
  const imported = await daemon.docker('import', tar, name)
  if (imported.code !== 0) throw new Error(`docker import: ${imported.stderr}`)
}
