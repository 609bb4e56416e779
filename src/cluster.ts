import cluster, { type Worker } from 'node:cluster'
import client from 'prom-client'

/** How a dead worker is replaced: at once after a long life, else after a delay that doubles with each early death. */
export interface RestartPolicy {
  /** Delay after the first early death. */
  baseMs: number
  /** The longest delay: a worker that keeps dying at start-up costs at most one start-up per this long. */
  maxMs: number
  /** A worker that lived this long died of something else than a crash loop: the count starts again. */
  stableMs: number
}

/** The primary's policy: 0.1 s, 0.2 s, 0.4 s ... up to 30 s between restarts of a worker that keeps dying. */
export const RESTART: RestartPolicy = { baseMs: 100, maxMs: 30000, stableMs: 30000 }

/**
 * When to replace a worker that died after `livedMs`, given how many early deaths in a row its
 * slot had before (`earlyDeaths`): returns the new count and the delay. Pure: tests call it directly.
 */
export function restartAfter (earlyDeaths: number, livedMs: number, policy: RestartPolicy = RESTART): { earlyDeaths: number, delayMs: number } {
  if (livedMs >= policy.stableMs) return { earlyDeaths: 0, delayMs: 0 }
  const n = earlyDeaths + 1
  return { earlyDeaths: n, delayMs: Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n - 1, 30)) }
}

type Log = (msg: string, extra?: object) => void

/**
 * node:cluster supervision: WORKERS processes share the port, each with its own sessions and
 * batcher. A worker that dies is replaced, with a growing delay while it keeps dying young
 * (`restartAfter`); the primary itself survives a worker dying at any moment (a send to it
 * fails quietly). On SIGTERM/SIGINT every worker drains and the primary exits once they have
 * (1 if any exited with an error), or after the shutdown timeout. Metrics are aggregated across
 * workers by the primary, so a scrape of any worker sees the whole cluster.
 */
export function runPrimary (workers: number, shutdownTimeoutMs: number, log: Log, policy: RestartPolicy = RESTART, workerEnv: Record<string, string> = {}): void {
  const aggregator = new client.AggregatorRegistry()
  const live = new Set<Worker>()
  const restarts = new Set<NodeJS.Timeout>()
  let stopping = false
  let failedOnStop = false

  const fork = (earlyDeaths: number): void => {
    const worker = cluster.fork(workerEnv)
    const pid = worker.process.pid
    const startedAt = Date.now()
    live.add(worker)
    // IPC failures (a send to a worker that just died, a signal it can no longer receive) land here
    worker.on('error', (err: Error) => log('worker channel error', { pid, error: err.message }))
    worker.once('exit', (code, signal) => {
      live.delete(worker)
      if (stopping) {
        if (!stoppedCleanly(code, signal)) failedOnStop = true
        if (live.size === 0) process.exit(failedOnStop ? 1 : 0)
        return
      }
      const next = restartAfter(earlyDeaths, Date.now() - startedAt, policy)
      log('worker died; replacing it', { pid, code, signal, earlyDeaths: next.earlyDeaths, delayMs: next.delayMs })
      later(next.earlyDeaths, next.delayMs)
    })
  }
  // a fork that throws (out of processes or memory) is tried again later, with the same backoff
  const later = (earlyDeaths: number, delayMs: number): void => {
    const timer = setTimeout(() => {
      restarts.delete(timer)
      try {
        fork(earlyDeaths)
      } catch (err) {
        const next = restartAfter(earlyDeaths, 0, policy)
        log('could not start a worker', { error: (err as Error).message, delayMs: next.delayMs })
        later(next.earlyDeaths, next.delayMs)
      }
    }, delayMs)
    restarts.add(timer)
  }

  cluster.on('message', (worker, msg: { type?: string, id?: number }) => {
    if (msg?.type !== 'losshub:metrics') return
    aggregator.clusterMetrics().then(
      text => send(worker, { type: 'losshub:metrics', id: msg.id, text }, log),
      err => send(worker, { type: 'losshub:metrics', id: msg.id, error: (err as Error).message }, log)
    )
  })
  for (let i = 0; i < workers; i++) fork(0)
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      stopping = true
      log('shutting down workers', { signal: sig })
      for (const timer of restarts) clearTimeout(timer)
      if (live.size === 0) process.exit(0)
      for (const w of live) w.process.kill('SIGTERM')
      setTimeout(() => process.exit(1), shutdownTimeoutMs + 1000).unref()
    })
  }
}

/**
 * Whether a worker told to stop (SIGTERM) ended well: it exited 0, or the SIGTERM itself ended
 * it (one still starting, before its handler was installed). Any other signal (an abort, a
 * crash, SIGKILL) is a failed stop, as is a non-zero exit.
 */
export function stoppedCleanly (code: number | null, signal: string | null): boolean {
  return code === 0 || (code === null && signal === 'SIGTERM')
}

/** Sends to a worker unless it has gone; a send that fails all the same (it died meanwhile) is logged, never thrown. */
export function send (worker: Pick<Worker, 'isConnected' | 'send' | 'process'>, msg: object, log: Log): void {
  const pid = worker.process.pid
  if (!worker.isConnected()) return log('worker gone before its answer', { pid })
  worker.send(msg, err => { if (err !== null) log('could not answer a worker', { pid, error: err.message }) })
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
