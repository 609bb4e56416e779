import cluster, { type Worker } from 'node:cluster'
import client from 'prom-client'

/**
 * node:cluster supervision: WORKERS processes share the port, each with its own sessions and
 * batcher. A worker that dies is replaced; on SIGTERM/SIGINT every worker drains and the
 * primary exits when they have (or after the shutdown timeout). Metrics are aggregated across
 * workers by the primary, so a scrape of any worker sees the whole cluster.
 */
export function runPrimary (workers: number, shutdownTimeoutMs: number, log: (msg: string, extra?: object) => void): void {
  const aggregator = new client.AggregatorRegistry()
  let stopping = false
  const fork = (): Worker => cluster.fork()
  cluster.on('message', (worker, msg: { type?: string, id?: number }) => {
    if (msg?.type !== 'losshub:metrics') return
    aggregator.clusterMetrics().then(
      text => worker.send({ type: 'losshub:metrics', id: msg.id, text }),
      err => worker.send({ type: 'losshub:metrics', id: msg.id, error: (err as Error).message })
    )
  })
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0)
      return
    }
    log('worker died; replacing it', { pid: worker.process.pid, code, signal })
    fork()
  })
  for (let i = 0; i < workers; i++) fork()
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      stopping = true
      log('shutting down workers', { signal: sig })
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM')
      setTimeout(() => process.exit(1), shutdownTimeoutMs + 1000).unref()
    })
  }
}

/** In a cluster worker: asks the primary for the whole cluster's metrics text. */
export function clusterMetrics (registry: client.Registry): () => Promise<string> {
  // constructing one installs prom-client's worker-side listener; it reports `registry`
  void new client.AggregatorRegistry()
  client.AggregatorRegistry.setRegistries([registry])
  let nextId = 0
  const pending = new Map<number, (reply: { text?: string, error?: string }) => void>()
  process.on('message', (msg: { type?: string, id?: number, text?: string, error?: string }) => {
    if (msg?.type !== 'losshub:metrics' || msg.id === undefined) return
    pending.get(msg.id)?.(msg)
    pending.delete(msg.id)
  })
  return async () => await new Promise<string>((resolve, reject) => {
    const id = nextId++
    pending.set(id, reply => (reply.text !== undefined ? resolve(reply.text) : reject(new Error(reply.error))))
    process.send?.({ type: 'losshub:metrics', id })
  })
}
