import os from 'node:os'

/** Service configuration, read from environment variables (documented in the README). */
export interface Config {
  port: number
  host: string
  bodyLimitMb: number
  logLevel: string
  /** ORT threads inside one op; 1 suits many small kernels and leaves cores to other work. */
  ortIntraOpThreads: number
  ortInterOpThreads: number
  /** Most ONNX sessions kept in memory (LRU), per kernel worker. */
  sessionCacheSize: number
  /** Kernel worker threads; 0 runs kernels on the event loop (tests). */
  kernelWorkers: number
  batchMaxSize: number
  batchMaxElements: number
  batchMaxDelayUs: number
  queueMaxRequests: number
  /** On SIGTERM/SIGINT: how long queued and running requests get before the process exits anyway. */
  shutdownTimeoutMs: number
  /** Processes sharing the port (node:cluster); 0 means one per CPU. */
  workers: number
  /** Load shedding: 503 while the event loop lags more than this (0: off). */
  maxEventLoopDelayMs: number
  /** Load shedding: 503 while the resident set is above this many MiB (0: off). */
  maxRssMb: number
}

/** The defaults every variable falls back to. */
export const DEFAULTS: Config = {
  port: 8080,
  host: '0.0.0.0',
  bodyLimitMb: 64,
  logLevel: 'info',
  ortIntraOpThreads: 1,
  ortInterOpThreads: 1,
  sessionCacheSize: 512,
  kernelWorkers: 1,
  batchMaxSize: 64,
  batchMaxElements: 65536,
  batchMaxDelayUs: 0,
  queueMaxRequests: 1024,
  shutdownTimeoutMs: 10000,
  workers: 0,
  maxEventLoopDelayMs: 1000,
  maxRssMb: 0
}

const VARS: Record<keyof Config, string> = {
  port: 'PORT',
  host: 'HOST',
  bodyLimitMb: 'BODY_LIMIT_MB',
  logLevel: 'LOG_LEVEL',
  ortIntraOpThreads: 'ORT_INTRA_OP_THREADS',
  ortInterOpThreads: 'ORT_INTER_OP_THREADS',
  sessionCacheSize: 'SESSION_CACHE_SIZE',
  kernelWorkers: 'KERNEL_WORKERS',
  batchMaxSize: 'BATCH_MAX_SIZE',
  batchMaxElements: 'BATCH_MAX_ELEMENTS',
  batchMaxDelayUs: 'BATCH_MAX_DELAY_US',
  queueMaxRequests: 'QUEUE_MAX_REQUESTS',
  shutdownTimeoutMs: 'SHUTDOWN_TIMEOUT_MS',
  workers: 'WORKERS',
  maxEventLoopDelayMs: 'MAX_EVENT_LOOP_DELAY_MS',
  maxRssMb: 'MAX_RSS_MB'
}

/** Reads the configuration from `env`, failing loudly on a value that is not of its type. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = { ...DEFAULTS }
  for (const [key, name] of Object.entries(VARS) as Array<[keyof Config, string]>) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    if (typeof DEFAULTS[key] === 'number') {
      const n = Number(raw)
      if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`)
      out[key] = n
    } else out[key] = raw
  }
  return out as unknown as Config
}

/** Number of CPUs this process may use (respects container CPU limits where Node can see them). */
export function cpuCount (): number { return os.availableParallelism() }
