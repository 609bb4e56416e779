import cluster from 'node:cluster'
import { buildApp } from './app'
import { runPrimary } from './cluster'
import { drain } from './shutdown'
import { cpuCount, loadConfig } from './config'

/**
 * Starts losshub. With WORKERS > 1 the primary supervises that many worker processes
 * sharing the port; each worker (or the single process) serves and drains on SIGTERM.
 */
async function main (): Promise<void> {
  const config = loadConfig()
  const workers = config.workers === 0 ? cpuCount() : config.workers
  if (workers > 1 && cluster.isPrimary) {
    runPrimary(workers, config.shutdownTimeoutMs, (msg, extra) => console.log(JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, msg, ...extra })))
    return
  }
  // under cluster, any worker's /metrics answers for the whole cluster (aggregated by the primary)
  const app = await buildApp(config, { clusterMetrics: cluster.isWorker })
  await app.listen({ port: config.port, host: config.host })
  await app.losshub.warmed
  app.log.info('kernels loaded; ready')
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      app.log.info({ signal, queued: app.losshub.batcher.queued }, 'draining')
      setTimeout(() => {
        app.log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting')
        process.exit(1)
      }, config.shutdownTimeoutMs).unref()
      drain(app, config.shutdownTimeoutMs).then(
        () => { app.log.info('drained; exiting'); process.exit(0) },
        err => { app.log.error({ err }, 'shutdown failed'); process.exit(1) }
      )
    })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
