import os from 'node:os'

/** Service configuration, read from environment variables (documented in the README). */
export interface Config {
  port: number
  /** TCP port of the Open Inference Protocol over gRPC, in the same process (0: off). */
  grpcPort: number
  host: string
  bodyLimitMb: number
  /** Most elements of any one tensor a request may make (arguments, broadcasts, intermediates, outputs). */
  maxElements: number
  logLevel: string
  /** ORT threads inside one op; 1 suits many small kernels and leaves cores to other work. */
  ortIntraOpThreads: number
  ortInterOpThreads: number
  /** Most ONNX sessions kept in memory (LRU), per kernel worker. */
  sessionCacheSize: number
  /** Largest cost (elements, one step) of a call run on the event loop instead of a kernel worker (0: never). */
  inlineKernelElements: number
  /** Intra-op threads of a lone large kernel while other processes leave the cores free (0: one per CPU; 1: never more than ORT_INTRA_OP_THREADS). */
  wideKernelThreads: number
  /** Kernel worker threads; 0 runs kernels on the event loop (tests). */
  kernelWorkers: number
  batchMaxSize: number
  batchMaxElements: number
  batchMaxDelayUs: number
  queueMaxRequests: number
  /** Most MiB of decoded arguments waiting in the queue; past it 503 (0: no bound). */
  queueMaxMb: number
  /** Deadline of a request, queueing plus kernel time; past it 504 and its kernel is stopped (0: none). */
  requestTimeoutMs: number
  /** Kernel worker threads kept for long calls (the long lane); 0: long calls share the others. */
  longKernelWorkers: number
  /** Sequential steps (ctc's frames) from which a call is long (0: steps never make it long). */
  longKernelSteps: number
  /** Elements of its largest tensor from which a call is long (0: elements never make it long). */
  longKernelElements: number
  /** On SIGTERM/SIGINT: how long queued and running requests get before the process exits anyway. */
  shutdownTimeoutMs: number
  /** Processes sharing the port (node:cluster); 0 means one per CPU. */
  workers: number
  /** Load shedding: 503 while the event loop lags more than this (0: off). */
  maxEventLoopDelayMs: number
  /** Load shedding: 503 while the resident set is above this many MiB (0: off). */
  maxRssMb: number
  /** Most time to receive a whole request, headers and body; past it Node answers 408 and closes the connection. */
  receiveTimeoutMs: number
  /** Most time to receive a request's headers (at most `receiveTimeoutMs`). */
  headersTimeoutMs: number
  /** How long an idle keep-alive connection stays open; longer than a load balancer's idle timeout. */
  keepAliveTimeoutMs: number
}

/** The defaults every variable falls back to. */
export const DEFAULTS: Config = {
  port: 8080,
  grpcPort: 8081,
  host: '0.0.0.0',
  bodyLimitMb: 64,
  maxElements: 4194304,
  logLevel: 'info',
  ortIntraOpThreads: 1,
  ortInterOpThreads: 1,
  sessionCacheSize: 512,
  inlineKernelElements: 4096,
  wideKernelThreads: 0,
  kernelWorkers: 1,
  batchMaxSize: 64,
  batchMaxElements: 65536,
  batchMaxDelayUs: 0,
  queueMaxRequests: 1024,
  queueMaxMb: 128,
  requestTimeoutMs: 30000,
  longKernelWorkers: 1,
  longKernelSteps: 1000,
  longKernelElements: 1048576,
  shutdownTimeoutMs: 10000,
  workers: 0,
  maxEventLoopDelayMs: 1000,
  maxRssMb: 0,
  receiveTimeoutMs: 30000,
  headersTimeoutMs: 10000,
  keepAliveTimeoutMs: 72000
}

/** The environment variable of each setting. */
export const VARS: Record<keyof Config, string> = {
  port: 'PORT',
  grpcPort: 'GRPC_PORT',
  host: 'HOST',
  bodyLimitMb: 'BODY_LIMIT_MB',
  maxElements: 'MAX_ELEMENTS',
  logLevel: 'LOG_LEVEL',
  ortIntraOpThreads: 'ORT_INTRA_OP_THREADS',
  ortInterOpThreads: 'ORT_INTER_OP_THREADS',
  sessionCacheSize: 'SESSION_CACHE_SIZE',
  inlineKernelElements: 'INLINE_KERNEL_ELEMENTS',
  wideKernelThreads: 'WIDE_KERNEL_THREADS',
  kernelWorkers: 'KERNEL_WORKERS',
  batchMaxSize: 'BATCH_MAX_SIZE',
  batchMaxElements: 'BATCH_MAX_ELEMENTS',
  batchMaxDelayUs: 'BATCH_MAX_DELAY_US',
  queueMaxRequests: 'QUEUE_MAX_REQUESTS',
  queueMaxMb: 'QUEUE_MAX_MB',
  requestTimeoutMs: 'REQUEST_TIMEOUT_MS',
  longKernelWorkers: 'LONG_KERNEL_WORKERS',
  longKernelSteps: 'LONG_KERNEL_STEPS',
  longKernelElements: 'LONG_KERNEL_ELEMENTS',
  shutdownTimeoutMs: 'SHUTDOWN_TIMEOUT_MS',
  workers: 'WORKERS',
  maxEventLoopDelayMs: 'MAX_EVENT_LOOP_DELAY_MS',
  maxRssMb: 'MAX_RSS_MB',
  receiveTimeoutMs: 'RECEIVE_TIMEOUT_MS',
  headersTimeoutMs: 'HEADERS_TIMEOUT_MS',
  keepAliveTimeoutMs: 'KEEP_ALIVE_TIMEOUT_MS'
}

type NumberKey = { [K in keyof Config]: Config[K] extends number ? K : never }[keyof Config]

/**
 * What a variable may be: an integer (`int`) or a decimal number (`number`) from `min` to `max`
 * inclusive (a bound may name another setting), or a string, from `oneOf` when given.
 */
export type Rule = { type: 'int' | 'number', min: number | NumberKey, max: number | NumberKey } | { type: 'string', oneOf?: readonly string[] }

const INT32 = 2 ** 31 - 1
const HOUR_MS = 3600000

/**
 * The allowed values of every setting, checked at start-up. Lower bounds keep out values that
 * would deadlock or cannot work (an empty batch or queue, a zero body limit); upper bounds keep
 * out typos (a port past 65535, a thousand worker threads). 0 is allowed only where the README
 * gives it a meaning (off, no bound, automatic, any free port).
 */
export const RULES: { [K in keyof Config]: Config[K] extends number ? Extract<Rule, { type: 'int' | 'number' }> : Extract<Rule, { type: 'string' }> } = {
  port: { type: 'int', min: 0, max: 65535 },
  grpcPort: { type: 'int', min: 0, max: 65535 },
  host: { type: 'string' },
  bodyLimitMb: { type: 'number', min: 0.001, max: 500 }, // 500 MiB: V8's longest string is just under 512 MiB
  maxElements: { type: 'int', min: 1, max: INT32 },
  logLevel: { type: 'string', oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
  ortIntraOpThreads: { type: 'int', min: 1, max: 256 },
  ortInterOpThreads: { type: 'int', min: 1, max: 256 },
  sessionCacheSize: { type: 'int', min: 1, max: 1000000 },
  inlineKernelElements: { type: 'int', min: 0, max: INT32 },
  wideKernelThreads: { type: 'int', min: 0, max: 256 },
  kernelWorkers: { type: 'int', min: 0, max: 64 },
  batchMaxSize: { type: 'int', min: 1, max: 65536 },
  batchMaxElements: { type: 'int', min: 1, max: INT32 },
  batchMaxDelayUs: { type: 'int', min: 0, max: 1000000 },
  queueMaxRequests: { type: 'int', min: 1, max: 1000000 },
  queueMaxMb: { type: 'number', min: 0, max: 1048576 },
  requestTimeoutMs: { type: 'int', min: 0, max: HOUR_MS },
  longKernelWorkers: { type: 'int', min: 0, max: 64 },
  longKernelSteps: { type: 'int', min: 0, max: INT32 },
  longKernelElements: { type: 'int', min: 0, max: INT32 },
  shutdownTimeoutMs: { type: 'int', min: 1, max: HOUR_MS },
  workers: { type: 'int', min: 0, max: 256 },
  maxEventLoopDelayMs: { type: 'int', min: 0, max: 60000 },
  maxRssMb: { type: 'int', min: 0, max: 1048576 },
  receiveTimeoutMs: { type: 'int', min: 1000, max: HOUR_MS },
  headersTimeoutMs: { type: 'int', min: 1000, max: 'receiveTimeoutMs' },
  keepAliveTimeoutMs: { type: 'int', min: 1000, max: HOUR_MS }
}

/** A setting that is out of its range or not of its type: the message names each variable at fault. */
export class ConfigError extends Error {}

const INTEGER = /^-?\d+$/
const DECIMAL = /^-?(\d+\.?\d*|\.\d+)$/

/**
 * Reads the configuration from `env` (unset or empty variables keep their defaults) and checks
 * every value against RULES. Throws one ConfigError listing every variable at fault, with its
 * allowed range.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, number | string> = { ...DEFAULTS }
  const problems = new Map<keyof Config, string>()
  const keys = Object.keys(RULES) as Array<keyof Config>
  for (const key of keys) {
    const raw = env[VARS[key]]?.trim()
    if (raw === undefined || raw === '') continue
    const rule: Rule = RULES[key]
    if (rule.type === 'string') {
      if (rule.oneOf === undefined || rule.oneOf.includes(raw)) out[key] = raw
      else problems.set(key, `must be one of ${rule.oneOf.join(', ')}; got ${JSON.stringify(raw)}`)
    } else if ((rule.type === 'int' ? INTEGER : DECIMAL).test(raw)) out[key] = Number(raw)
    else problems.set(key, `must be ${describe(rule)}; got ${JSON.stringify(raw)}`)
  }
  // ranges once every value is read: a bound may name another setting
  const bound = (b: number | NumberKey): number => (typeof b === 'number' ? b : out[b] as number)
  for (const key of keys) {
    const rule: Rule = RULES[key]
    if (rule.type === 'string' || problems.has(key)) continue
    const value = out[key] as number
    if (value >= bound(rule.min) && value <= bound(rule.max)) continue
    const given = env[VARS[key]]?.trim()
    // a default yields to a bound that another setting moved (HEADERS_TIMEOUT_MS to RECEIVE_TIMEOUT_MS)
    if (given === undefined || given === '') out[key] = Math.min(Math.max(value, bound(rule.min)), bound(rule.max))
    else problems.set(key, `must be ${describe(rule, bound)}; got ${JSON.stringify(given)}`)
  }
  const faults = keys.filter(key => problems.has(key)).map(key => `${VARS[key]} ${problems.get(key) as string}`)
  if (faults.length > 0) throw new ConfigError(['invalid configuration:', ...faults].join('\n  '))
  return out as unknown as Config
}

/** The allowed range in words: "an integer from 1 to 65536"; a bound naming a setting shows its value when known. */
function describe (rule: Extract<Rule, { type: 'int' | 'number' }>, bound?: (b: number | NumberKey) => number): string {
  const show = (b: number | NumberKey): string => (typeof b === 'number' ? String(b) : `${VARS[b]}${bound !== undefined ? ` (${bound(b)})` : ''}`)
  return `${rule.type === 'int' ? 'an integer' : 'a number'} from ${show(rule.min)} to ${show(rule.max)}`
}

/** Number of CPUs this process may use (respects container CPU limits where Node can see them). */
export function cpuCount (): number { return os.availableParallelism() }
