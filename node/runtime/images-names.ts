/**
 * Names and paths for images origin makes on a node: pure. A service's own images live
 * under `origin/<service>` (docker's repository rules: lower case, no leading or doubled
 * separators), tagged by the code version and the recipe, so a new commit or a changed
 * recipe makes a new image and the same ones are never made twice.
 */
import { createHash } from 'node:crypto'
import { posix } from 'node:path'

/** Where an image comes from: a name already on the node, a tarball in the code tree, or a Dockerfile in it. */
export interface ImageSpec { ref?: string, load?: string, build?: { dockerfile?: string } }

const shortHash = (s: string, n: number): string => createHash('sha256').update(s).digest('hex').slice(0, n)

/**
 * The repository of a service's images, `origin/<name>`. Service names allow upper case and
 * separators docker refuses; such a name is folded to docker's rules and given a short hash
 * of the real name, so `Web` and `web` never share images.
 */
export function imageRepository (service: string): string {
  const folded = service.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '')
  if (folded === service) return `origin/${service}`
  return `origin/${folded === '' ? 'service' : folded}-${shortHash(service, 8)}`
}

/**
 * The tag of a service's image: the code version (shortened to stay readable) and a hash of
 * the recipe, since the same code loaded from another tarball or built from another
 * Dockerfile is another image.
 */
export function imageTag (codeVersion: string, image: ImageSpec): string {
  const clean = codeVersion.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[.-]+/, '')
  const version = clean.length === 0 || clean.length > 40 || clean !== codeVersion ? `v${shortHash(codeVersion, 16)}` : clean
  const recipe = JSON.stringify({ load: image.load ?? null, dockerfile: image.build === undefined ? null : image.build.dockerfile ?? 'Dockerfile', ref: image.ref ?? null })
  return `${version}-${shortHash(recipe, 6)}`
}

/**
 * Why a path given in a spec cannot name a file of the code tree, or undefined when it can:
 * relative, normalised inside the tree. (Symbolic links are checked on disk by the caller.)
 */
export function badTreePath (path: string): string | undefined {
  if (path.length === 0) return 'is empty'
  if (path.includes('\0')) return 'holds a NUL byte'
  if (posix.isAbsolute(path)) return 'is absolute; give a path inside the code tree'
  const normal = posix.normalize(path)
  if (normal === '..' || normal.startsWith('../')) return 'leaves the code tree'
  if (normal === '.' || normal.endsWith('/')) return 'names the code tree itself, not a file in it'
  return undefined
}

/** What a spec's image section asks for, checked before any call to the engine. */
export function imageSpecProblem (image: ImageSpec): string | undefined {
  if (image.load !== undefined && image.build !== undefined) return 'gives both load and build; give one'
  if (image.ref === undefined && image.load === undefined && image.build === undefined) return 'gives none of ref, load and build'
  if (image.ref !== undefined && !/^[a-z0-9][a-z0-9._/:@-]{0,254}$/i.test(image.ref)) return `ref ${JSON.stringify(image.ref)} is not an image name`
  if (image.ref?.includes('@') === true && (image.load !== undefined || image.build !== undefined)) return `ref ${image.ref} is a digest; with load or build, ref is the name:tag to give the image`
  if (image.load !== undefined) {
    const bad = badTreePath(image.load)
    if (bad !== undefined) return `load path ${JSON.stringify(image.load)} ${bad}`
  }
  if (image.build?.dockerfile !== undefined) {
    const bad = badTreePath(image.build.dockerfile)
    if (bad !== undefined) return `build.dockerfile ${JSON.stringify(image.build.dockerfile)} ${bad}`
  }
  return undefined
}

/**
 * The images a `docker load` reported: `Loaded image: name:tag` for tagged ones,
 * `Loaded image ID: sha256:...` for untagged ones.
 */
export function loadedImages (text: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    const m = /^Loaded image(?: ID)?: (\S+)\s*$/.exec(line.trim())
    if (m !== null) out.push(m[1])
  }
  return out
}

/** One line of the engine's JSON progress: text for the log, or the error that ended it. */
export interface Progress { text?: string, error?: string }

export function progressLine (line: string): Progress {
  let o: { stream?: unknown, status?: unknown, progress?: unknown, error?: unknown, errorDetail?: { message?: unknown } }
  try {
    o = JSON.parse(line)
  } catch {
    return { text: line + '\n' }
  }
  if (typeof o.errorDetail?.message === 'string') return { error: o.errorDetail.message }
  if (typeof o.error === 'string') return { error: o.error }
  if (typeof o.stream === 'string') return { text: o.stream }
  if (typeof o.status === 'string') return { text: `${o.status}${typeof o.progress === 'string' ? ' ' + o.progress : ''}\n` }
  return {}
}
