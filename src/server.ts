import cluster from 'node:cluster'
import pino from 'pino'
import { buildApp } from './app'
import { workerAllocator } from './allocator'
import { RESTART, runPrimary } from './cluster'
import { drain } from './shutdown'
import { hasOldSpaceFloor, workerExecArgv } from './heap'
import { letGoWhenIdle } from './http/body-memory'
import { collectWhenIdle } from './tensor/release-memory'
import { ConfigError, cpuCount, loadConfig } from './config'

/**
 * Starts losshub: HTTP on PORT, the Open Inference Protocol over gRPC on GRPC_PORT (0: off).
 * With WORKERS > 1 the primary supervises that many worker processes sharing both ports;
 * each worker (or the single process) serves and drains on SIGTERM.
 */
async function main (): Promise<void> {
  const config = loadConfig()
  const workers = config.workers === 0 ? cpuCount() : config.workers
  if (workers > 1 && cluster.isPrimary) {
    const log = (msg: string, extra?: object): void => console.log(JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, msg, ...extra }))
    const allocator = workerAllocator(config.allocator, process.env)
    log('starting workers', { workers, allocator: allocator.name })
    cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) })
    runPrimary(workers, config.shutdownTimeoutMs, log, RESTART, allocator.env)
    return
  }
  // under cluster, any worker's /metrics answers for the whole cluster (aggregated by the primary)
  const app = await buildApp(config, { clusterMetrics: cluster.isWorker })
  // the memory kept for large requests is handed back after KEPT_IDLE_MS without them, and the
  // heap collected after HEAP_IDLE_MS without any request, where the heap can afford the
  // collection (src/heap.ts)
  if (hasOldSpaceFloor()) {
    letGoWhenIdle()
    collectWhenIdle(() => app.losshub.lastRequestAt)
  }
  // from here on a signal drains, also while the kernels still load (closing waits for the warm-up)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      app.log.info({ signal, queued: app.losshub.batcher.queued }, 'draining')
      setTimeout(() => {
        const inKernels = app.losshub.threadsInKernels()
        if (inKernels === 0) {
          app.log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting')
          process.exit(1)
        }
        // an exit stops the kernel threads, and a kernel returning into a stopped one aborts the
        // process (SIGABRT, a core dump): a running kernel cannot be interrupted, so the process
        // ends by SIGKILL. The app's logger writes asynchronously, and a SIGKILL waits for
        // nothing: this line is written synchronously, and lines still on their way get 100 ms.
        pino({ level: config.logLevel }, pino.destination({ dest: 1, sync: true }))
          .error({ timeoutMs: config.shutdownTimeoutMs, threadsInKernels: inKernels }, 'shutdown timed out with a kernel still running; killing the process')
        setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100)
      }, config.shutdownTimeoutMs).unref()
      drain(app, config.shutdownTimeoutMs).then(
        () => { app.log.info('drained; exiting'); process.exit(0) },
        err => { app.log.error({ err }, 'shutdown failed'); process.exit(1) }
      )
    })
  }
  // a cluster worker binds only once its kernels are loaded: the primary hands connections to
  // any listening worker, and one still warming up would take requests it cannot serve yet.
  // A single process listens at once, so that /readyz can say it is starting.
  if (cluster.isWorker && !await warmed(app)) return
  try {
    await app.listen({ port: config.port, host: config.host })
    // under node:cluster every worker binds GRPC_PORT too: the primary shares it, as it does PORT
    if (config.grpcPort > 0) app.log.info({ port: await app.losshub.grpc.listen(config.grpcPort, config.host) }, 'gRPC listening (Open Inference Protocol, grpc.health.v1)')
  } catch (err) {
    // close before exiting: an exit while ONNX Runtime loads on a kernel thread aborts the process
    const bound = new Promise(resolve => setTimeout(resolve, config.shutdownTimeoutMs).unref())
    await Promise.race([app.close().catch(() => {}), bound])
    throw err
  }
  if (!await warmed(app)) return
  app.log.info('kernels loaded; ready')
}

/** Waits for the warm-up; false when a signal cut it short (the drain then exits the process). */
async function warmed (app: Awaited<ReturnType<typeof buildApp>>): Promise<boolean> {
  try {
    await app.losshub.warmed
    return true
  } catch (err) {
    if (app.losshub.draining) return false
    throw err
  }
}

main().catch(err => {
  // a bad setting is the operator's to fix: its message says which and what is allowed, no stack needed
  console.error(err instanceof ConfigError ? `losshub: ${err.message}` : err)
  process.exit(1)
})
