/**
 * The ways to run an image besides the bare executable: a Dockerfile, a systemd unit, and
 * the README that says how to run each form. Plain text made from the build's facts.
 */
import { NODE_ENV, NODE_OPTIONS } from '../node/launch'
import type { BuildFacts } from './types'

export interface FormsOptions {
  facts: BuildFacts
  /** Mesh port. */
  port: number
  /** Container image name the README and k8s YAML use. */
  imageName: string
  keysInside: boolean
  secrets: string[]
  executableBytes?: number
}

/** Debian's slim image has what a node needs to supervise programs: sh, and util-linux's prlimit, setpriv and unshare. */
export const DEFAULT_BASE = 'debian:bookworm-slim'

/** The node's data dir in its container, and on the host: the same path both sides (see the README's Docker section). */
export const DATA_DIR = '/var/lib/origin'

/** The one way to run the node's image so it can start containers beside itself; README and Dockerfile show it. */
export function dockerRunLine (imageName: string): string {
  return `docker run -d --name origin-1 --privileged --network host -v /var/run/docker.sock:/var/run/docker.sock -v ${DATA_DIR}:${DATA_DIR} ${imageName}`
}

export function dockerfile (o: FormsOptions): string {
  return `# origin node image for cluster "${o.facts.cluster}", node certificate serial ${o.facts.serial}.
#   docker build -t ${o.imageName} .
#   ${dockerRunLine(o.imageName)}
# --privileged: PID namespaces for process services; the socket: container services are
# started beside this one; ${DATA_DIR} the same path on the host and inside, because the
# engine bind-mounts a container service's ORIGIN_STATE_DIR from the host (README.md).
# The base needs glibc, sh, and util-linux (prlimit, setpriv, unshare) for the programs
# the node supervises; build on another with --build-arg BASE=...
ARG BASE=${DEFAULT_BASE}
FROM \${BASE}
COPY origin-node /origin-node
ENV ORIGIN_DATA=${DATA_DIR}
# A small young generation and two malloc arenas: the node idles in less memory (README.md).
ENV NODE_OPTIONS="${NODE_OPTIONS}"
${Object.entries(NODE_ENV).map(([k, v]) => `ENV ${k}=${v}`).join('\n')}
VOLUME ["${DATA_DIR}"]
EXPOSE ${o.port}
# SIGTERM: the node leaves the cluster and stops what it runs before it exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/origin-node"]
`
}

/** Only the executable goes to the docker daemon; keys/ and secrets/ stay out of the build context. */
export const DOCKERIGNORE = '*\n!origin-node\n'

export function systemdUnit (o: FormsOptions): string {
  return `# origin node for cluster "${o.facts.cluster}" (certificate serial ${o.facts.serial}).
# Install: cp origin-node /usr/local/bin/ && cp origin-node.service /etc/systemd/system/
#          systemctl daemon-reload && systemctl enable --now origin-node
# Per-machine settings go in /etc/origin/node.env (ORIGIN_LISTEN=, ORIGIN_ADVERTISE=, ORIGIN_SEEDS=).
[Unit]
Description=origin node (cluster ${o.facts.cluster})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/bin/origin-node
Environment=ORIGIN_DATA=/var/lib/origin
# A small young generation and two malloc arenas: the node idles in less memory (README.md).
Environment="NODE_OPTIONS=${NODE_OPTIONS}"
${Object.entries(NODE_ENV).map(([k, v]) => `Environment=${k}=${v}`).join('\n')}
EnvironmentFile=-/etc/origin/node.env
StateDirectory=origin
StateDirectoryMode=0700
# SIGTERM to the node alone: it leaves the cluster and stops its programs itself;
# whatever is left when the timeout ends is killed.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=30
Restart=always
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`
}

function mib (bytes: number | undefined): string {
  return bytes === undefined ? '' : ` (${(bytes / 1024 / 1024).toFixed(1)} MiB)`
}

export function readme (o: FormsOptions): string {
  const f = o.facts
  return `# origin node image: cluster "${f.cluster}"

Built ${f.builtAt} by origin ${f.origin}. This image's node certificate has serial
\`${f.serial}\` and expires ${f.notAfter.slice(0, 10)}. If the image leaks, put that serial in
\`revokedSerials\` of the spec's cluster.json: nodes of this image are refused, nodes of
other images are not. To rotate: build a new image, roll it out, then revoke this serial.

| file | what |
|---|---|
| \`origin-node\`${mib(o.executableBytes)} | the node: one executable with the program, \`image.json\`${o.keysInside ? ' and the keys' : ''} inside |
| \`Dockerfile\` | a container image of \`origin-node\` alone |
| \`k8s/\` | DaemonSet, headless Service, keys Secret: \`kubectl apply -f k8s/\` |
| \`systemd/origin-node.service\` | a unit for bare machines |
| \`image.json\`, \`keys/\`${o.secrets.length > 0 ? ', `secrets/`' : ''} | what is inside \`origin-node\`, as files |

Settings that differ per machine come from the environment, never from flags; each
overrides \`image.json\` and is checked like it:

| variable | what | default |
|---|---|---|
| \`ORIGIN_LISTEN\` | \`HOST:PORT\` to listen on | image.json \`listen\` |
| \`ORIGIN_ADVERTISE\` | \`HOST:PORT\` other nodes dial | the listen address |
| \`ORIGIN_DATA\` | data directory (node id, logs) | image.json \`data\`, beside \`origin-node\` |
| \`ORIGIN_SEEDS\` | \`HOST:PORT\` list, commas or spaces | image.json \`seeds\` |
| \`ORIGIN_DISCOVERY_DNS\` | a DNS name whose records list the peers | image.json \`discovery.dns.name\` (the k8s form: its headless Service) |
| \`ORIGIN_KEYS\` | a directory with \`ca.crt node.crt node.key\` to use instead | ${o.keysInside ? 'the keys inside' : 'none: required (built with --keys-outside)'} |

## A machine

    ./origin-node                       # starts the node; Ctrl-C or SIGTERM leaves the cluster
    ORIGIN_LISTEN=10.0.0.5:${o.port} ORIGIN_SEEDS=10.0.0.4:${o.port} ./origin-node
    ./origin-node --info                # cluster, certificate serial and expiry

Nothing else is needed on the machine: no Node.js, no npm, no checkout. The systemd unit,
the Dockerfile and the DaemonSet also set \`NODE_OPTIONS=${NODE_OPTIONS}\` (V8's young
generation kept small: an idle node holds about 10 MiB less) and ${Object.entries(NODE_ENV).map(([k, v]) => `\`${k}=${v}\``).join(', ')} (two malloc
arenas instead of one per thread: 1-3 MiB less); set them the same way when you start
\`origin-node\` yourself. The node's build commands and programs do not inherit them.

## systemd

    cp origin-node /usr/local/bin/ && cp systemd/origin-node.service /etc/systemd/system/
    echo ORIGIN_LISTEN=10.0.0.5:${o.port} > /etc/origin/node.env    # per machine
    systemctl daemon-reload && systemctl enable --now origin-node

## Docker

    docker build -t ${o.imageName} .
    ${dockerRunLine(o.imageName)}

Add \`-e ORIGIN_LISTEN=10.0.0.5:${o.port}\` (and the other variables above) where
\`image.json\` does not fit the machine. Each part of the line is needed:

- \`--network host\`: peers dial the machine's address, and the node's services (processes
  and containers, all on the host network) reach each other and the node on loopback.
- \`--privileged\`: process services run in PID namespaces of their own (\`unshare\`
  needs CAP_SYS_ADMIN); without it the node says so and contains them by process group.
  An engine that cannot grant every capability (itself in a container: \`unable to apply
  caps\`) may run the node with \`--cap-add SYS_ADMIN\` instead, which is what that needs.
- \`-v /var/run/docker.sock:/var/run/docker.sock\`: services with \`run.image\` run as
  containers of the machine's Docker engine, beside the node's own container, not inside it.
  Whoever holds this socket is root on the machine: so is this node.
- \`-v ${DATA_DIR}:${DATA_DIR}\`: the data dir must be a directory of the host, at the
  **same path** inside the node's container as on the host. The engine takes bind-mount
  paths on the host: a container service's \`ORIGIN_STATE_DIR\` is a directory under the
  node's data dir, mounted by that path. A named volume, or another path inside, would give
  container services empty directories elsewhere on the host. Changing \`ORIGIN_DATA\`?
  Change both sides of \`-v\` with it.

The node's local API (\`ORIGIN_API\`, on 127.0.0.1) answers only requests carrying an
instance's own \`ORIGIN_API_KEY\`, which the node gives each instance it starts (process
or container), and where services run as users of their own, only from that service's
uid; anything else on the machine's loopback gets 401.

## Kubernetes

Push the Docker image where the cluster pulls from (the DaemonSet names \`${o.imageName}\`;
edit \`k8s/daemonset.yaml\` to change it), then \`kubectl apply -f k8s/\`. One node runs on
each machine, on the host network; they find each other through the headless Service.
Keys come from the Secret in \`k8s/secret.yaml\` (\`ORIGIN_KEYS\`), so an image built with
\`--keys-outside\` works the same.
`
}
