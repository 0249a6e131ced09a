/**
 * `origin build`: a node image from a keys directory and an image.json (build/). Thin:
 * parse arguments, call the builder, show each step, print the size and serial.
 */
import { OriginError } from '../errors'
import { parse, type Command } from './args'
import { requireAll } from './flags'
import { CERT_NAME } from '../vocabulary'

const usage = `usage: origin build --keys KEYS --config image.json --out DIR [options]

Writes a node image to DIR:
  DIR/origin-node                   one executable: the node program, image.json and the keys;
                                    './origin-node' starts the node, with nothing else installed
  DIR/Dockerfile                    a container image of origin-node alone
  DIR/k8s/                          DaemonSet, headless Service, keys Secret (kubectl apply -f)
  DIR/systemd/origin-node.service   a unit for bare machines
  DIR/image.json DIR/keys/          the inputs as files; DIR/README.md says how to run each form

Each build gets its own node certificate (its own serial), signed with KEYS/ca.key, which
never goes into the image; nor does any operator key. Revoke a leaked image by its serial.

  --keys KEYS          keys directory with ca.crt and ca.key (from 'origin keys init')
  --config FILE        image.json to build in (validated)
  --out DIR            image directory to write (new or empty)
  --secrets DIR        folder of secret files for services, put into the image
  --keys-outside       leave the keys out of origin-node: it reads them from ORIGIN_KEYS
  --cert-name NAME     CN of the node certificate (default image-<date>)
  --valid-days N       node certificate validity in days (default 730)
  --node FILE          node binary to build on (default: this one, ${process.version})
  --image-name NAME    container image name for the README and k8s YAML
  --k8s-data KIND      hostPath (default: a machine keeps its node id) or emptyDir
  --force              replace DIR if it holds a previous image
  --verbose            show the bundler's and injector's warnings

At run time, ORIGIN_LISTEN, ORIGIN_ADVERTISE, ORIGIN_DATA and ORIGIN_SEEDS override image.json.`

const options = {
  keys: { type: 'string' },
  config: { type: 'string' },
  out: { type: 'string' },
  secrets: { type: 'string' },
  'keys-outside': { type: 'boolean' },
  'cert-name': { type: 'string' },
  'valid-days': { type: 'string' },
  node: { type: 'string' },
  'image-name': { type: 'string' },
  'k8s-data': { type: 'string' },
  force: { type: 'boolean' },
  verbose: { type: 'boolean' }
} as const

function mib (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

export const buildCommand: Command = {
  usage,
  async run (argv) {
    const { values } = parse(argv, options, usage)
    requireAll(values, ['keys', 'config', 'out'], usage)
    const [keys, config, out] = [values.keys, values.config, values.out] as string[]
    let validDays: number | undefined
    if (values['valid-days'] !== undefined) {
      validDays = Number(values['valid-days'])
      if (!Number.isInteger(validDays) || validDays < 1) throw new OriginError('E_ARGS', `--valid-days must be a whole number of days, got "${values['valid-days']}"`, { usage })
    }
    const k8sData = values['k8s-data']
    if (k8sData !== undefined && k8sData !== 'hostPath' && k8sData !== 'emptyDir') throw new OriginError('E_ARGS', `--k8s-data must be hostPath or emptyDir, got "${k8sData}"`, { usage })
    if (values['cert-name'] !== undefined && !CERT_NAME.test(values['cert-name'])) throw new OriginError('E_ARGS', `--cert-name must be letters, digits, '.', '_', '-', got "${values['cert-name']}"`, { usage })
    // The builder (esbuild, postject) loads only here.
    const { buildImage } = require('../../build') as typeof import('../../build')
    console.log(`origin build: image for ${config} in ${out}`)
    const r = await buildImage({
      keys,
      config,
      out,
      secrets: values.secrets,
      keysOutside: values['keys-outside'] === true,
      certName: values['cert-name'],
      validDays,
      node: values.node,
      imageName: values['image-name'],
      k8sData,
      force: values.force === true,
      progress: (step, detail) => { console.log(`  ${step.padEnd(7)} ${detail}`) }
    })
    if (values.verbose === true) for (const w of r.warnings) console.log(`  warning: ${w.trim().replace(/^warning: /, '')}`)
    console.log(`done in ${r.seconds.total.toFixed(1)} s: ${r.executable} is ${mib(r.bytes)}; node certificate serial ${r.facts.serial} (revoke a leaked image by it), valid until ${r.facts.notAfter.slice(0, 10)}`)
    return 0
  }
}
