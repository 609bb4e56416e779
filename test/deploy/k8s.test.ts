/**
 * The Kubernetes manifests (deploy/k8s/), docker-compose.yml and deploy/prometheus.yml agree
 * with the service: its ports (HTTP and gRPC) and probes, its configuration variables and
 * shutdown timeout, and with each other (labels, names, ports).
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import YAML from 'yaml'
import { DEFAULTS, JEMALLOC_CONF, loadConfig } from '../../src/config'
import { jemallocCandidates } from '../../src/allocator'
import { build } from '../helpers/app'
import { grpcApp } from '../protocols/v2/grpc'

const root = path.join(__dirname, '..', '..')
const load = (file: string): any => YAML.parse(fs.readFileSync(path.join(root, file), 'utf8'))

const deployment = load('deploy/k8s/deployment.yaml')
const service = load('deploy/k8s/service.yaml')
const hpa = load('deploy/k8s/hpa.yaml')
const pdb = load('deploy/k8s/pdb.yaml')
const pod = deployment.spec.template
const container = pod.spec.containers.find((c: any) => c.name === 'losshub')
const env: Record<string, string> = Object.fromEntries((container?.env ?? []).map((e: any) => [e.name, e.value]))

/** Kubernetes CPU quantity in cores ("500m" → 0.5, "2" → 2). */
function cpu (q: string | number): number {
  const s = String(q)
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s)
}

/** Kubernetes memory quantity in bytes (binary and decimal suffixes). */
function bytes (q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q))
  if (m === null) throw new Error(`not a memory quantity: ${q}`)
  const unit: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }
  return Number(m[1]) * unit[m[2] ?? '']
}

/** Every key/value of `selector` is among `labels` (how Kubernetes matches matchLabels). */
function selects (selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v)
}

/** A probe's or service's port, named or numbered, as the container's port number. */
function portNumber (port: string | number): number | undefined {
  if (typeof port === 'number') return port
  return container.ports.find((p: any) => p.name === port)?.containerPort
}

t.test('manifests are the kinds and API versions the cluster expects', async t => {
  t.same([deployment.apiVersion, deployment.kind], ['apps/v1', 'Deployment'])
  t.same([service.apiVersion, service.kind], ['v1', 'Service'])
  t.same([hpa.apiVersion, hpa.kind], ['autoscaling/v2', 'HorizontalPodAutoscaler'])
  t.same([pdb.apiVersion, pdb.kind], ['policy/v1', 'PodDisruptionBudget'])
})

t.test('the container runs the image on the service port, one process per pod', async t => {
  t.ok(container, 'a container named losshub')
  t.equal(container.image, 'losshub:latest')
  const http = container.ports.find((p: any) => p.name === 'http')
  t.equal(http?.containerPort, DEFAULTS.port, 'containerPort "http" is the configured default port')
  const cfg = loadConfig(env) // throws on a malformed value, as the server would
  t.equal(cfg.workers, 1, 'WORKERS=1: Kubernetes scales pods, not processes')
  // ALLOCATOR preloads jemalloc into cluster workers only: the single process is given it here
  t.equal(env.LD_PRELOAD, jemallocCandidates()[0], 'jemalloc where the image links it')
  t.equal(env.MALLOC_CONF, JEMALLOC_CONF, 'with the settings cluster workers get')
  t.equal(cfg.port, http?.containerPort, 'the process listens where the container port points')
  const grpcPort = container.ports.find((p: any) => p.name === 'grpc')
  t.equal(grpcPort?.containerPort, DEFAULTS.grpcPort, 'containerPort "grpc" is the default GRPC_PORT')
  t.equal(cfg.grpcPort, grpcPort?.containerPort, 'gRPC listens where that container port points')
  t.equal(pod.metadata.annotations['prometheus.io/port'], String(http?.containerPort))
  t.equal(pod.metadata.annotations['prometheus.io/path'], '/metrics')
})

t.test('liveness is /healthz on the http port; readiness a grpc probe (grpc.health.v1) on the gRPC port', async t => {
  t.equal(container.livenessProbe?.httpGet?.path, '/healthz')
  t.equal(portNumber(container.livenessProbe.httpGet.port), DEFAULTS.port)
  const probe = container.readinessProbe?.grpc
  t.ok(probe !== undefined && container.readinessProbe.httpGet === undefined, 'readiness probes gRPC')
  t.equal(typeof probe.port, 'number', 'a grpc probe takes a port number (Kubernetes has no named port there)')
  t.equal(probe.port, DEFAULTS.grpcPort)
})

t.test('the readiness probe\'s health check answers SERVING exactly when /readyz answers 200', async t => {
  const s = await grpcApp(t)
  const service = container.readinessProbe.grpc.service ?? '' // Kubernetes sends "" when none is set
  const both = async (): Promise<[number, unknown]> => {
    const r = await s.call('Check', { service }, { service: 'health' })
    return [(await s.app.inject('/readyz')).statusCode, r.ok ? r.value.status : r.error.details]
  }
  t.same(await both(), [200, 'SERVING'])
  s.app.losshub.draining = true
  t.same(await both(), [503, 'NOT_SERVING'], 'draining')
  s.app.losshub.draining = false
})

t.test('resources: requests and limits, requests within limits', async t => {
  const { requests, limits } = container.resources ?? {}
  t.ok(requests?.cpu !== undefined && requests?.memory !== undefined, 'requests set (the HPA measures CPU against the request)')
  t.ok(limits?.cpu !== undefined && limits?.memory !== undefined, 'limits set')
  t.ok(cpu(requests.cpu) > 0 && cpu(requests.cpu) <= cpu(limits.cpu), `cpu ${requests.cpu} <= ${limits.cpu}`)
  t.ok(bytes(requests.memory) > 0 && bytes(requests.memory) <= bytes(limits.memory), `memory ${requests.memory} <= ${limits.memory}`)
})

t.test('shutdown: preStop sleep, then SIGTERM and the drain, all within the grace period', async t => {
  const command: string[] = container.lifecycle?.preStop?.exec?.command ?? []
  t.equal(command[0], 'sleep', 'preStop sleeps so that endpoints drain before SIGTERM')
  const preStopS = Number(command[1])
  t.ok(preStopS > 0, `preStop sleeps ${command[1]} s`)
  const shutdownMs = loadConfig(env).shutdownTimeoutMs
  t.equal(shutdownMs, DEFAULTS.shutdownTimeoutMs, 'the pod keeps the default shutdown timeout')
  // the grace period runs from the start of preStop: it must cover the sleep and the drain
  const graceS = pod.spec.terminationGracePeriodSeconds
  t.ok(graceS * 1000 > preStopS * 1000 + shutdownMs, `grace ${graceS} s > preStop ${preStopS} s + shutdown ${shutdownMs} ms`)
})

t.test('pods run as non-root on a read-only root filesystem', async t => {
  const podSc = pod.spec.securityContext ?? {}
  const sc = container.securityContext ?? {}
  t.equal(sc.runAsNonRoot ?? podSc.runAsNonRoot, true, 'runAsNonRoot')
  // the image's USER is a name; the kubelet needs a number to enforce runAsNonRoot
  const uid = sc.runAsUser ?? podSc.runAsUser
  t.ok(Number.isInteger(uid) && uid > 0, `numeric non-root runAsUser (${uid})`)
  t.equal(sc.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem')
  t.equal(sc.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation: false')
  t.same(sc.capabilities?.drop, ['ALL'], 'drops every capability')
  const tmp = container.volumeMounts?.find((m: any) => m.mountPath === '/tmp')
  t.ok(tmp !== undefined && pod.spec.volumes.some((v: any) => v.name === tmp.name && v.emptyDir !== undefined), '/tmp is a writable emptyDir')
})

t.test('labels and selectors line up', async t => {
  const labels = pod.metadata.labels
  t.ok(selects(deployment.spec.selector.matchLabels, labels), 'Deployment selector matches its pod template')
  t.ok(selects(service.spec.selector, labels), 'Service selects the pods')
  t.ok(selects(pdb.spec.selector.matchLabels, labels), 'PodDisruptionBudget selects the pods')
  const port = service.spec.ports.find((p: any) => p.name === 'http')
  t.equal(portNumber(port?.targetPort), DEFAULTS.port, 'Service targets the container port')
  const grpc = service.spec.ports.find((p: any) => p.name === 'grpc')
  t.equal(portNumber(grpc?.targetPort), DEFAULTS.grpcPort, 'Service targets the gRPC container port')
  t.equal(grpc?.appProtocol, 'grpc')
})

t.test('the HPA scales this Deployment on CPU and leaves room for the PDB', async t => {
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name })
  const metric = hpa.spec.metrics.find((m: any) => m.type === 'Resource' && m.resource?.name === 'cpu')
  t.equal(metric?.resource?.target?.type, 'Utilization')
  t.ok(metric.resource.target.averageUtilization > 0 && metric.resource.target.averageUtilization <= 100)
  t.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas >= hpa.spec.minReplicas, `replicas ${hpa.spec.minReplicas}..${hpa.spec.maxReplicas}`)
  t.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count')
  // a drain must be able to evict one pod at the HPA's minimum
  const allowed = pdb.spec.maxUnavailable ?? hpa.spec.minReplicas - pdb.spec.minAvailable
  t.ok(allowed >= 1 && allowed < hpa.spec.minReplicas, `PDB allows ${allowed} of ${hpa.spec.minReplicas} pods to go`)
})

t.test('docker-compose runs the service and a Prometheus that scrapes it', async t => {
  const compose = load('docker-compose.yml')
  const svc = compose.services.losshub
  t.equal(svc.build, '.')
  t.ok((svc.ports as string[]).includes(`${DEFAULTS.port}:${DEFAULTS.port}`), 'publishes the service port')
  t.ok((svc.ports as string[]).includes(`${DEFAULTS.grpcPort}:${DEFAULTS.grpcPort}`), 'publishes the gRPC port')
  const probe = (svc.healthcheck?.test as string[]).join(' ')
  t.match(probe, new RegExp(`:${DEFAULTS.port}/(readyz|healthz)`), 'healthcheck calls a probe on the service port')
  const prom = compose.services.prometheus
  t.match(prom.image, /^prom\/prometheus/)
  const mount = (prom.volumes as string[]).find(v => v.startsWith('./deploy/prometheus.yml:'))
  t.ok(mount, 'mounts deploy/prometheus.yml')
  t.ok((prom.command as string[]).includes(`--config.file=${mount?.split(':')[1]}`), 'and uses it as its config')

  const config = load('deploy/prometheus.yml')
  const job = config.scrape_configs.find((j: any) => j.job_name === 'losshub')
  t.equal(job?.metrics_path ?? '/metrics', '/metrics')
  t.same(job.static_configs.flatMap((c: any) => c.targets), [`losshub:${DEFAULTS.port}`], 'scrapes the compose service on the service port')
})

t.test('GET /metrics, which Prometheus scrapes, is Prometheus text', async t => {
  const app = await build(t)
  const r = await app.inject('/metrics')
  t.equal(r.statusCode, 200)
  t.match(String(r.headers['content-type']), /^text\/plain/)
  t.match(r.body, /^# (HELP|TYPE) /m)
})
