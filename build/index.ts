/**
 * build: makes a node image from a keys directory and an image.json. One call, one image
 * directory: `origin-node` (a single executable holding the node program, image.json and
 * the keys), a Dockerfile, Kubernetes YAML, a systemd unit, and the inputs as files.
 *
 * Each build gets its own node certificate, signed here with the CA key (which never goes
 * into the image), so one image is revoked by its serial without touching the others.
 *
 * @example
 *   const r = await buildImage({ keys: 'keys', config: 'image.json', out: 'image', progress: console.log })
 *   r.serial   // '5F0A…', for revokedSerials
 */
import { existsSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { parseImageConfig } from '../node/config/image'
import { OriginError, errorMessage } from '../node/errors'
import { issueImageIdentity, NODE_KEY_FILES, type NodeKeyFile } from '../node/keys/image'
import { bundle } from './bundle'
import { DOCKERIGNORE, dockerfile, readme, systemdUnit, type FormsOptions } from './forms'
import { knownCertificates, readSecrets, refuseClusterSecrets, type ImageFile } from './inputs'
import { k8sManifests } from './k8s'
import { inject, makeBlob } from './sea'
import { typescriptFile } from './typescript-asset'
import { EVAL_THREAD_ASSET, EVALUATOR_ASSET, TYPESCRIPT_ASSET, type BuildFacts, type EmbeddedImage } from './types'

export type { BuildFacts, EmbeddedImage } from './types'

export interface BuildOptions {
  /** The cluster's keys directory: `ca.crt` and `ca.key` (signs this image's node certificate; stays out). */
  keys: string
  /** The image.json to build in. */
  config: string
  /** The image directory to write. */
  out: string
  /** A folder of secret files for services (image.json's `secrets`), put into the image. */
  secrets?: string
  /** Leave the keys out of `origin-node`: it then reads them from ORIGIN_KEYS (k8s Secret, mounted files). @default false */
  keysOutside?: boolean
  /** CN of the node certificate. @default `image-<date>` */
  certName?: string
  /** Node certificate validity in days. @default 730 */
  validDays?: number
  /** The node binary to copy into `origin-node` (Node.js 20 or newer, the target's OS and CPU). @default this process's */
  node?: string
  /** Container image name used in the README and k8s YAML. @default `origin-node-<cluster>:<serial prefix>` */
  imageName?: string
  /** k8s data volume. @default 'hostPath' */
  k8sData?: 'hostPath' | 'emptyDir'
  /** Replace `out` if it holds a previous image. @default false */
  force?: boolean
  /** Called at each step with its name and what it did. */
  progress?: (step: string, detail: string) => void
}

export interface BuildResult {
  out: string
  executable: string
  /** Size of `origin-node` in bytes. */
  bytes: number
  facts: BuildFacts
  /** Seconds per step, and `total`. */
  seconds: Record<string, number>
  /** What esbuild and postject warned about (shown with --verbose). */
  warnings: string[]
}

function originVersion (): string {
  for (const file of [join(__dirname, '..', '..', 'package.json'), join(__dirname, '..', 'package.json')]) {
    try { return (require(file) as { version: string }).version } catch {}
  }
  return 'unknown'
}

/** `out` must be new or empty, or (with force) a previous image directory. */
async function prepareOut (out: string, force: boolean): Promise<void> {
  const entries = await readdir(out).catch(() => undefined)
  if (entries === undefined || entries.length === 0) { await mkdir(out, { recursive: true }); return }
  if (!existsSync(join(out, 'build.json'))) throw new OriginError('E_ARGS', `${out} is not empty and holds no image; give an empty or new directory`, { file: out })
  if (!force) throw new OriginError('E_ARGS', `${out} holds an image already; give another directory, or --force to replace it`, { file: out })
  for (const name of entries) await rm(join(out, name), { recursive: true, force: true })
}

/** Port of a `HOST:PORT`, or the default mesh port for 0. */
function meshPort (listen: string): number {
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1))
  return port === 0 ? 7400 : port
}

export async function buildImage (o: BuildOptions): Promise<BuildResult> {
  const started = Date.now()
  const seconds: Record<string, number> = {}
  let last = started
  const step = (name: string, detail: string): void => {
    const now = Date.now()
    seconds[name] = (now - last) / 1000
    last = now
    o.progress?.(name, detail)
  }
  const out = resolve(o.out)
  const node = o.node ?? process.execPath

  // check: image.json, the keys directory, what may go in.
  let imageJson: string
  try {
    imageJson = await readFile(o.config, 'utf8')
  } catch (err) {
    throw new OriginError('E_ARGS', `cannot read ${o.config}: ${errorMessage(err)}`, { file: o.config })
  }
  const config = parseImageConfig(imageJson, o.config)
  if (!existsSync(node)) throw new OriginError('E_ARGS', `no node binary at ${node}`, { file: node })
  const known = await knownCertificates(o.keys).catch((err) => { throw new OriginError('E_KEY_MISSING', `cannot read ${join(o.keys, 'ca.crt')}: ${errorMessage(err)}`, { file: join(o.keys, 'ca.crt') }) })
  const secrets = o.secrets === undefined ? [] : await readSecrets(o.secrets)
  refuseClusterSecrets([{ path: 'image.json', content: Buffer.from(imageJson), source: o.config }, ...secrets], known)
  await prepareOut(out, o.force === true)
  step('check', `${o.config}, ${o.keys}/ca.crt${secrets.length > 0 ? `, ${secrets.length} secret${secrets.length === 1 ? '' : 's'}` : ''} (ca.key signs, and stays out)`)

  // sign: this image's own node certificate.
  const identity = await issueImageIdentity({ keys: o.keys, name: o.certName, validDays: o.validDays })
  if (identity.info.cluster !== config.cluster) {
    throw new OriginError('E_CONFIG_INVALID', `${o.config} is for cluster "${config.cluster}", but ${o.keys}/ca.crt is the CA of cluster "${identity.info.cluster}"`, { file: o.config })
  }
  const keys: Record<NodeKeyFile, string> = { 'ca.crt': identity.ca, 'node.crt': identity.cert, 'node.key': identity.key }
  const keyFiles: ImageFile[] = NODE_KEY_FILES.map((f) => ({ path: `keys/${f}`, content: Buffer.from(keys[f]), source: `${f} (this build's)` }))
  refuseClusterSecrets(keyFiles, known)
  const facts: BuildFacts = {
    cluster: config.cluster,
    serial: identity.info.serial,
    certName: identity.info.name,
    notAfter: identity.info.notAfter.toISOString(),
    builtAt: new Date(started).toISOString(),
    origin: originVersion()
  }
  step('sign', `node certificate ${facts.serial} (CN ${facts.certName}), valid until ${facts.notAfter.slice(0, 10)}`)

  // bundle: the node program and this image in one file.
  const embedded: EmbeddedImage = {
    format: 1,
    imageJson,
    keys: o.keysOutside === true ? undefined : keys,
    secrets: Object.fromEntries(secrets.map((s) => [s.path.slice('secrets/'.length), s.content.toString('base64')])),
    build: facts
  }
  const bundled = await bundle(embedded)
  const size = (code: string): string => {
    const bytes = Buffer.byteLength(code)
    return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`
  }
  step('bundle', `node program${o.keysOutside === true ? '' : ', keys'} and image.json: ${size(bundled.code)} of JavaScript; spec evaluator ${size(bundled.evaluator)} and eval thread ${size(bundled.evalThread)} (TypeScript apart, loaded when first needed)`)

  const blob = await makeBlob({ code: bundled.code, assets: { [EVALUATOR_ASSET]: bundled.evaluator, [EVAL_THREAD_ASSET]: bundled.evalThread, [TYPESCRIPT_ASSET]: await readFile(typescriptFile(), 'utf8') }, node, out: join(out, 'origin-node') })
  step('blob', `single executable blob, ${(blob.length / 1024 / 1024).toFixed(1)} MiB, by ${node}`)

  const executable = join(out, 'origin-node')
  const said = await inject(blob, { node, out: executable })
  // With the keys inside, the file is as secret as node.key.
  await chmod(executable, o.keysOutside === true ? 0o755 : 0o700)
  const bytes = (await stat(executable)).size
  step('inject', `${executable}, ${(bytes / 1024 / 1024).toFixed(1)} MiB`)

  // forms: the other ways to run it, and the inputs as files.
  const imageName = o.imageName ?? `origin-node-${config.cluster.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}:${facts.serial.slice(0, 12).toLowerCase()}`
  const port = meshPort(config.listen)
  const forms: FormsOptions = { facts, port, imageName, keysInside: o.keysOutside !== true, secrets: secrets.map((s) => s.path), executableBytes: bytes }
  const files: Record<string, string | Buffer> = {
    'image.json': imageJson,
    Dockerfile: dockerfile(forms),
    '.dockerignore': DOCKERIGNORE,
    'systemd/origin-node.service': systemdUnit(forms),
    'README.md': readme(forms),
    'build.json': JSON.stringify({ ...facts, keysInside: o.keysOutside !== true, bytes, imageName }, null, 2) + '\n'
  }
  for (const [file, text] of Object.entries(k8sManifests({ cluster: config.cluster, image: imageName, port, seeds: config.seeds, keys, serial: facts.serial, data: o.k8sData }))) files[`k8s/${file}`] = text
  for (const f of [...keyFiles, ...secrets]) files[f.path] = f.content
  for (const [file, data] of Object.entries(files)) {
    const path = join(out, file)
    await mkdir(dirname(path), { recursive: true })
    const secret = file === 'keys/node.key' || file.startsWith('secrets/') || file === 'k8s/secret.yaml'
    await writeFile(path, data, { mode: secret ? 0o600 : 0o644 })
  }
  await chmod(join(out, 'keys'), 0o700)
  step('forms', 'Dockerfile, k8s/, systemd/origin-node.service, README.md, image.json, keys/')
  seconds.total = (Date.now() - started) / 1000
  return { out, executable, bytes, facts, seconds, warnings: [...bundled.warnings, ...said] }
}
