/**
 * `origin node`: run a node, from an image directory or from flags alone.
 * SIGTERM / SIGINT make it leave the cluster gracefully and exit 0.
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { applyEnvironment, parseImageConfig, readImageConfig, type ImageConfig } from '../config/image'
import { OriginError, errorMessage } from '../errors'
import { certificateExpiry } from '../keys/expiry'
import { loadIdentity } from '../keys/files'
import { startNode } from '../assembly'
import { hostPort, parse, type Command } from './args'
import { requireAll } from './flags'
import { PARENT_VARIABLE } from '../launch/self'

const usage = `usage: origin node --image DIR [overrides]
       origin node --keys KEYS --cluster NAME --listen HOST:PORT [--seeds HOST:PORT,...] --data DIR

Runs a node. The first node started originates the cluster; later ones join it through
their seeds. SIGTERM or Ctrl-C leaves the cluster gracefully.

  --image DIR        image directory: DIR/image.json (config) and DIR/keys/ (ca.crt, node.crt, node.key)
  --keys KEYS        keys directory (overrides DIR/keys)
  --cluster NAME     cluster name; must match the certificates
  --listen HOST:PORT mesh port, mutual TLS (port 0: any free port)
  --advertise HOST:PORT  address other nodes dial (default: the listen address)
  --seeds LIST       comma-separated HOST:PORT of nodes to join through
  --data DIR         data directory (node id, node.log)
  --secrets DIR      folder of secret files services take env values from (default: IMAGE/secrets)
  --name ID          node id to take on first start (kept in the data dir afterwards)
  --spec URL[#REF]   spec repo (HTTP(S) git remote; #REF picks a branch, default the remote's HEAD)
  --spec-dir DIR     take the spec from a local directory, watched for changes (no git)
  --log-level LEVEL  debug | info | warn | error

Environment (deploy-time facts that differ per machine; flags override them):
  ORIGIN_LISTEN, ORIGIN_ADVERTISE   HOST:PORT, as --listen and --advertise
  ORIGIN_DATA                       data directory, as --data
  ORIGIN_SEEDS                      HOST:PORT list separated by commas or spaces, as --seeds`

const options = {
  image: { type: 'string' },
  keys: { type: 'string' },
  cluster: { type: 'string' },
  listen: { type: 'string' },
  advertise: { type: 'string' },
  seeds: { type: 'string' },
  data: { type: 'string' },
  name: { type: 'string' },
  'log-level': { type: 'string' },
  spec: { type: 'string' },
  'spec-dir': { type: 'string' },
  secrets: { type: 'string' }
} as const

async function resolveConfig (argv: string[]): Promise<{ config: ImageConfig, keys: string }> {
  const { values } = parse(argv, options, usage)
  const image = values.image
  let config: ImageConfig
  let keys: string
  if (image !== undefined) {
    const dir = resolve(image)
    config = await readImageConfig(join(dir, 'image.json'))
    config.data = resolve(dir, config.data)
    // An image's secrets live beside its keys: `secrets/` unless image.json names another folder.
    config.secrets = resolve(dir, config.secrets ?? 'secrets')
    keys = values.keys ?? join(dir, 'keys')
  } else {
    requireAll(values, ['cluster', 'keys', ...(process.env.ORIGIN_LISTEN === undefined ? ['listen'] : []), ...(process.env.ORIGIN_DATA === undefined ? ['data'] : [])], usage, '(or --image DIR)')
    keys = values.keys as string
    config = parseImageConfig(JSON.stringify({ cluster: values.cluster }), 'command line')
  }
  // The environment overrides the image (ORIGIN_DATA relative to the working directory).
  const env = applyEnvironment(config, process.env)
  config = env.config
  if (env.applied.includes('ORIGIN_DATA')) config.data = resolve(config.data)
  // Flags override the image; each goes through the same checks as image.json.
  const flags: Record<string, unknown> = {}
  if (values.cluster !== undefined) flags.cluster = values.cluster
  if (values.listen !== undefined) { hostPort(values.listen, 'listen'); flags.listen = values.listen }
  if (values.advertise !== undefined) { hostPort(values.advertise, 'advertise'); flags.advertise = values.advertise }
  if (values.seeds !== undefined) flags.seeds = values.seeds.split(',').map((s) => s.trim()).filter(Boolean).map((s) => { hostPort(s, 'seeds'); return s })
  if (values.name !== undefined) flags.name = values.name
  if (values['log-level'] !== undefined) flags.log = { level: values['log-level'] }
  try {
    parseImageConfig(JSON.stringify({ cluster: config.cluster, ...flags }), 'command line')
  } catch (err) {
    throw new OriginError('E_ARGS', errorMessage(err))
  }
  config = { ...config, ...flags }
  if (values.data !== undefined) config.data = resolve(values.data)
  if (values.secrets !== undefined) config.secrets = resolve(values.secrets)
  if (values.spec !== undefined && values['spec-dir'] !== undefined) throw new OriginError('E_ARGS', 'give --spec or --spec-dir, not both')
  if (values.spec !== undefined) {
    const [url, ref] = values.spec.split('#')
    if (!/^https?:\/\/\S+$/.test(url) || ref === '') throw new OriginError('E_ARGS', `--spec must be an HTTP(S) git URL, optionally with #BRANCH, got "${values.spec}"`)
    config.spec = { ...config.spec, url, ref }
    config.specDir = undefined
  }
  if (values['spec-dir'] !== undefined) {
    if (!existsSync(values['spec-dir'])) throw new OriginError('E_ARGS', `--spec-dir ${values['spec-dir']} does not exist`)
    config.specDir = resolve(values['spec-dir'])
    config.spec = undefined
  } else if (image !== undefined && config.specDir !== undefined) {
    config.specDir = resolve(image, config.specDir)
  }
  if (config.spec !== undefined && config.specDir !== undefined) throw new OriginError('E_ARGS', 'image.json sets both "spec" and "specDir"; keep one')
  if (!existsSync(keys)) throw new OriginError('E_ARGS', `keys directory ${keys} does not exist (make one with 'origin keys init')`)
  return { config, keys }
}

export const nodeCommand: Command = {
  usage,
  async run (argv) {
    return await runNode(await resolveConfig(argv))
  }
}

/** How often a running node looks at its certificate's expiry again. */
const EXPIRY_CHECK_MS = 12 * 3600 * 1000

/** How often a node started with PARENT_VARIABLE looks whether its parent still runs. */
const PARENT_CHECK_MS = 1000

/**
 * With PARENT_VARIABLE set to this process's parent pid (launchNode sets it: the demo, tests
 * and benchmarks), `gone` is called once that parent has ended: a killed test run or demo
 * does not leave its nodes running. Linux re-parents an orphan, so its ppid changes.
 */
function watchParent (gone: () => void): NodeJS.Timeout | undefined {
  const parent = Number(process.env[PARENT_VARIABLE])
  if (!Number.isSafeInteger(parent) || parent <= 1 || parent !== process.ppid) return undefined
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    gone()
  }, PARENT_CHECK_MS).unref()
  return timer
}

/**
 * Runs a node until SIGTERM or SIGINT, then leaves the cluster gracefully; resolves 0.
 * `keys` is a directory or a label held in memory (see holdKeys). Warns in the node log
 * when the node certificate is within weeks of its expiry, and again twice a day.
 */
export async function runNode ({ config, keys }: { config: ImageConfig, keys: string }): Promise<number> {
  // Signals are caught from the start: a SIGTERM while the node is still starting must
  // still end in a graceful leave, not in the default kill.
  let signalled: string | undefined
  let wake = (): void => {}
  const onSignal = (signal: string): void => {
    if (signalled !== undefined) { process.stderr.write(`${signal} again: exiting at once\n`); process.exit(1) }
    signalled = signal
    wake()
  }
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))
  const parentTimer = watchParent(() => onSignal(`the process that started this node (${process.env[PARENT_VARIABLE] ?? ''}) is gone`))
  const node = await startNode({ config, keys })
  const { info } = await loadIdentity({ keys })
  const checkExpiry = (first: boolean): void => {
    const e = certificateExpiry(info, Date.now())
    if (e.level !== 'ok') node.log.warn(`node ${e.message}`)
    else if (first) node.log.info(`node ${e.message}`)
  }
  checkExpiry(true)
  // Real time, not the node's clock: TLS judges the certificate by the host's clock.
  const expiryTimer = setInterval(() => { checkExpiry(false) }, EXPIRY_CHECK_MS).unref()
  if (signalled === undefined) await new Promise<void>((resolve) => { wake = resolve })
  clearInterval(expiryTimer)
  if (parentTimer !== undefined) clearInterval(parentTimer)
  node.log.info(`${signalled ?? 'signal'}: leaving the cluster`)
  try {
    await node.stop()
  } catch (err) {
    node.log.error(`stop failed: ${errorMessage(err)}`)
  }
  return 0
}
