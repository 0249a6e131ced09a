/**
 * Kubernetes manifests for an image: a DaemonSet (one node per machine), a headless
 * Service (its DNS name lists every pod: what the nodes join through), and the node's keys
 * as a Secret, mounted at /etc/origin/keys (ORIGIN_KEYS), so the keys can live in the
 * cluster instead of the container image. `kubectl apply -f k8s/` takes them as they are.
 *
 * Pods use the host's network: a node supervises programs on its machine and peers dial
 * the machine's address, as on a bare machine. Data is a hostPath (kept across pod
 * restarts, so a machine keeps its node id) or an emptyDir.
 */
import type { NodeKeyFile } from '../node/keys/image'
import { NODE_ENV, NODE_OPTIONS } from '../node/launch'
import { toYaml, type YamlValue } from './yaml'

export interface K8sOptions {
  cluster: string
  /** The container image the DaemonSet runs (what `docker build -t` named). */
  image: string
  /** Mesh port (image.json's listen port). */
  port: number
  /** Seeds from image.json, joined through besides the Service. */
  seeds: string[]
  keys: Record<NodeKeyFile, string>
  serial: string
  /** @default 'hostPath' */
  data?: 'hostPath' | 'emptyDir'
}

/** File name -> YAML text. */
export function k8sManifests (o: K8sOptions): Record<string, string> {
  const name = `origin-${o.cluster.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 52).replace(/-+$/, '')
  const labels = { 'app.kubernetes.io/name': 'origin-node', 'app.kubernetes.io/instance': name }
  const dataDir = '/var/lib/origin'
  const header = (what: string): string[] => [`origin node image for cluster "${o.cluster}", node certificate serial ${o.serial}: ${what}`]

  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${name}-keys`, labels },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(o.keys).map(([file, pem]) => [file, Buffer.from(pem).toString('base64')]))
  }

  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels },
    spec: {
      clusterIP: 'None',
      // Starting nodes must find each other before any is ready.
      publishNotReadyAddresses: true,
      selector: labels,
      ports: [{ name: 'mesh', port: o.port, targetPort: o.port, protocol: 'TCP' }]
    }
  }

  const env: YamlValue[] = [
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'ORIGIN_LISTEN', value: `0.0.0.0:${o.port}` },
    { name: 'ORIGIN_ADVERTISE', value: `$(POD_IP):${o.port}` },
    // Peers come from the headless Service's records (every ready and unready pod), re-resolved.
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'ORIGIN_DISCOVERY_DNS', value: `${name}.$(POD_NAMESPACE).svc.cluster.local` },
    ...(o.seeds.length === 0 ? [] : [{ name: 'ORIGIN_SEEDS', value: o.seeds.join(',') }]),
    { name: 'ORIGIN_DATA', value: dataDir },
    { name: 'ORIGIN_KEYS', value: '/etc/origin/keys' },
    // A small young generation and two malloc arenas: the node idles in less memory (README.md).
    { name: 'NODE_OPTIONS', value: NODE_OPTIONS },
    ...Object.entries(NODE_ENV).map(([name, value]) => ({ name, value }))
  ]
  const dataVolume = o.data === 'emptyDir'
    ? { name: 'data', emptyDir: {} }
    : { name: 'data', hostPath: { path: `/var/lib/${name}`, type: 'DirectoryOrCreate' } }

  const daemonSet = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, labels },
    spec: {
      selector: { matchLabels: labels },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          // SIGTERM makes the node leave the cluster and stop what it runs; give it time.
          terminationGracePeriodSeconds: 30,
          containers: [{
            name: 'origin-node',
            image: o.image,
            imagePullPolicy: 'IfNotPresent',
            env,
            ports: [{ name: 'mesh', containerPort: o.port, protocol: 'TCP' }],
            readinessProbe: { tcpSocket: { port: o.port }, periodSeconds: 5 },
            volumeMounts: [
              { name: 'data', mountPath: dataDir },
              { name: 'keys', mountPath: '/etc/origin/keys', readOnly: true }
            ]
          }],
          volumes: [
            dataVolume,
            { name: 'keys', secret: { secretName: `${name}-keys`, defaultMode: 0o400 } }
          ]
        }
      }
    }
  }

  return {
    'secret.yaml': toYaml(secret, header("the node's keys (ca.crt, node.crt, node.key), mounted at /etc/origin/keys. Never add ca.key here.")),
    'service.yaml': toYaml(service, header('headless Service: its DNS name lists every node, which is how a starting node finds the others.')),
    'daemonset.yaml': toYaml(daemonSet as YamlValue, header('one node per machine, on the host network; SIGTERM on pod stop makes the node leave gracefully.'))
  }
}
