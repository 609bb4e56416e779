import os from 'node:os'
import { Kind, Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

const INT32 = 2 ** 31 - 1
const HOUR_MS = 3600000
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** jemalloc's settings for ALLOCATOR=jemalloc when MALLOC_CONF is unset (src/allocator.ts says why each). */
export const JEMALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,oversize_threshold:0,lg_extent_max_active_fit:10'

/**
 * Every setting of the service, declared once: its type, allowed range, default and meaning.
 * A setting is read from the environment variable of its name in UPPER_SNAKE_CASE (`grpcPort`
 * from `GRPC_PORT`); the README's configuration table is generated from this (`npm run docs`).
 * Lower bounds keep out values that would deadlock or cannot work (an empty batch or queue, a
 * zero body limit); upper bounds keep out typos (a port past 65535, a thousand worker threads).
 * 0 is allowed only where the description gives it a meaning (off, no bound, automatic, any
 * free port). `atMost` names another setting whose value bounds this one from above.
 */
export const CONFIG = Type.Object({
  port: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'TCP port of HTTP (`0`: any free port)' }),
  grpcPort: Type.Integer({
    default: 8081,
    minimum: 0,
    maximum: 65535,
    description: 'TCP port of the Open Inference Protocol over gRPC and of `grpc.health.v1`, served by the same process (every worker under `WORKERS > 1`); its largest message is `BODY_LIMIT_MB`; `0`: no gRPC'
  }),
  host: Type.String({ default: '0.0.0.0', description: 'interface to listen on' }),
  // 500 MiB: V8's longest string is just under 512 MiB
  bodyLimitMb: Type.Number({ default: 64, minimum: 0.001, maximum: 500, description: 'largest request body in MiB; larger gets 413 (after the rest of the body, up to 64 MiB or this limit if larger, is read and dropped, so that a client that reads only once it has sent all still gets it; a client that stops sending for a second gets it then, and the connection closes)' }),
  maxElements: Type.Integer({
    default: 4194304,
    minimum: 1,
    maximum: INT32,
    description: 'most elements of any one tensor a request makes: each argument (a zero-size dim counts as 1, so `[0, 10^8]` is 10^8), a broadcast, a loss\'s intermediates (a one-hot, multilabel_margin\'s N·C·C, CTC\'s T·N·(2S+1) lattice), the loss and the gradients. Past it: 400 `TOO_LARGE` naming the tensor, before anything is allocated. The default, 2^22 (a [4096,1024] tensor), is 16 MiB in float32 and 32 MiB in float64; the largest graphs hold a few of those at once, and the reply\'s text is the largest cost: a float64 loss of 2^22 elements with `reduction: "none"` in nested form is an 80 MB body that peaked at 0.9 GB resident (2^24 peaked at 2.6 GB, over the 2 GiB limit of `deploy/k8s`)'
  }),
  maxSteps: Type.Integer({
    default: 100000,
    minimum: 1,
    maximum: INT32,
    description: 'most sequential steps a request\'s kernel may take (ctc\'s frames T: a Scan runs them one after another, some 30 to 40 µs each): 100000 is some 3 to 4 s of kernel. Past it: 400 `TOO_LARGE` before anything runs. A kernel cannot be stopped once it runs (one past its deadline is answered 504 but computes on), so this is what bounds the time one request may buy'
  }),
  logLevel: Type.Union(LOG_LEVELS.map(level => Type.Literal(level)), {
    default: 'info',
    description: 'pino level: one JSON line per request at `info`, with its request id (`x-request-id` is honoured and echoed); `warn` leaves those lines out, which saves some 15 to 20 µs of CPU a request (about 8% of a small request\'s)'
  }),
  workers: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 256,
    description: 'processes sharing the port (`node:cluster`); `0`: one per CPU; `1` runs a single process (use `1` on Kubernetes: scale with pods)'
  }),
  allocator: Type.Union([Type.Literal('system'), Type.Literal('jemalloc')], {
    default: 'jemalloc',
    description: 'C allocator of the worker processes (`WORKERS` > 1). `jemalloc`: preloaded when installed (`libjemalloc.so.2`, Debian package `libjemalloc2`; the Docker image has it at `/usr/local/lib/libjemalloc.so.2`) and `LD_PRELOAD` is unset, with `MALLOC_CONF` or else `' + JEMALLOC_CONF + '`: it hands memory freed by past requests back to the system within a few seconds (with the memory kept for large requests let go when idle, a worker 13 s after the bench:peer workloads (KEPT_IDLE_MS, then 10 s until 2026-11-28, and 3 s): 154 to 258 MiB over the runs so far, against 250 to 356 on glibc; bench/README.md), at no cost in requests a second beyond the noise of this machine (A/B against glibc: 0.97 to 1.02); for large gRPC messages that grpc-js reads (the service reads those with raw tensors itself: src/protocols/v2/grpc-collected.ts), these settings with `,thp:always` added, in `MALLOC_CONF`, took a [4096,1000] message\'s p50 from 33.8 and 40.9 to 14.6 and 27.0 ms (two bench:v2 runs of each, before the service read it itself), at some 40 MiB more resident per worker (src/allocator.ts says why); glibc when it is not installed. `system`: as started (glibc, with `GLIBC_TUNABLES`; or whatever `LD_PRELOAD` names). A single process (`WORKERS=1`) runs on what it was started with: set `LD_PRELOAD` and `MALLOC_CONF` for it, as deploy/k8s does'
  }),
  kernelWorkers: Type.Integer({
    default: 1,
    minimum: 0,
    maximum: 64,
    description: 'kernel worker threads per process; ONNX Runtime runs there, not on the HTTP event loop (but for tiny calls, `INLINE_KERNEL_ELEMENTS`), so a long kernel does not hold up other requests (measured in bench/README.md; `0`: on the event loop)'
  }),
  longKernelWorkers: Type.Integer({
    default: 1,
    minimum: 0,
    maximum: 64,
    description: 'kernel worker threads per process kept for long calls (the long lane), so that a kernel running for seconds (ctc over many frames) never holds the worker small requests wait for: they keep `KERNEL_WORKERS` to themselves. Idle unless a long call runs; none when `KERNEL_WORKERS` is `0`; `0`: long calls share the `KERNEL_WORKERS`'
  }),
  longKernelSteps: Type.Integer({
    default: 1000,
    minimum: 0,
    maximum: INT32,
    description: 'a call with this many sequential steps (ctc\'s frames T: a Scan runs them one after another, some 30 µs each with gradients, more for a larger batch) is long: 1000 frames are some 30 to 40 ms of kernel, 50000 one and a half to two seconds (`0`: steps never make a call long)'
  }),
  longKernelElements: Type.Integer({
    default: 1048576,
    minimum: 0,
    maximum: INT32,
    description: 'a call whose largest tensor (argument, intermediate or gradient, as `MAX_ELEMENTS` counts) has this many elements is long: from 2^20 elements (the default) a kernel takes from a few ms to a few hundred, depending on the loss (`0`: size never makes a call long)'
  }),
  ortIntraOpThreads: Type.Integer({ default: 1, minimum: 1, maximum: 256, description: 'ONNX Runtime threads within one op, per kernel worker; 1 suits many small kernels and leaves cores to other work' }),
  ortInterOpThreads: Type.Integer({ default: 1, minimum: 1, maximum: 256, description: 'ONNX Runtime threads across ops, per kernel worker' }),
  sessionCacheSize: Type.Integer({
    default: 512,
    minimum: 1,
    maximum: 1000000,
    description: 'most ONNX sessions kept per kernel worker (LRU); one per loss × dtype × structural options × which dims are 1. The event loop keeps as many for its inline kernels (`INLINE_KERNEL_ELEMENTS`), and each worker up to 4 more for wide runs (`WIDE_KERNEL_THREADS`); `losshub_kernel_sessions` in `/metrics` counts them'
  }),
  inlineKernelElements: Type.Integer({
    default: 4096,
    minimum: 0,
    maximum: INT32,
    description: 'a call whose cost (its largest tensor, as `MAX_ELEMENTS` counts; a batch\'s members summed) is at most this, in one sequential step, runs on the event loop instead of a kernel worker: sooner than the hop to a worker and back (some 0.1 to 0.25 ms), and short enough not to hold up other requests: 30 to 100 µs for most losses at 4096 elements, some 0.45 ms for the slowest (Lovasz with gradients; `npm run bench:kernels`). A kernel\'s first such call takes the hop while the event loop builds its own session of the kernel (a few ms, once), so that the event loop holds sessions only for kernels called tiny. Calls that arrive while one runs there queue and batch as usual (`0`: every kernel on a worker)'
  }),
  wideKernelThreads: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 256,
    description: 'ONNX Runtime threads of a lone large call: one of at least `LONG_KERNEL_ELEMENTS` elements runs on a session with this many intra-op threads when no other kernel of the process runs or waits and other processes left that many cores free over the last second (more threads than free cores make a kernel slower, not faster). `0`: one per CPU; `1`: never more than `ORT_INTRA_OP_THREADS`'
  }),
  batchMaxSize: Type.Integer({ default: 64, minimum: 1, maximum: 65536, description: 'most requests in one kernel run; `1` turns batching off' }),
  batchMaxElements: Type.Integer({
    default: 65536,
    minimum: 1,
    maximum: INT32,
    description: 'most elements in one kernel run, counting each member\'s working size (its largest tensor, as `MAX_ELEMENTS` counts it); a request this large runs alone (batching buys nothing there: its compute outweighs the per-call overhead)'
  }),
  batchMaxDelayUs: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 1000000,
    description: 'how long a request may wait for others while a kernel worker is free, in µs; `0` never waits (requests that queue while the worker is busy still batch)'
  }),
  queueMaxRequests: Type.Integer({ default: 1024, minimum: 1, maximum: 1000000, description: 'requests waiting at most; past it, 503 `OVERLOADED` with `Retry-After` at once' }),
  queueMaxMb: Type.Number({
    default: 128,
    minimum: 0,
    maximum: 1048576,
    description: 'MiB of decoded arguments waiting at most; past it, 503 `OVERLOADED` with `Retry-After` at once (a request is still taken when nothing waits, whatever its size: `BODY_LIMIT_MB` and `MAX_ELEMENTS` bound that). 128 MiB holds two of the largest base64 requests `BODY_LIMIT_MB` admits (48 MiB decoded each) beside any number of small ones; queued requests also keep their parsed bodies, about as much again, so the queue stays near a quarter of the 2 GiB pod of `deploy/k8s`, the rest left to running kernels and replies. Replies their clients do not take are bounded by it too: past it, those that made no progress for a second have their connections closed, the largest first (`0`: no bound)'
  }),
  bodiesInProgressMb: Type.Number({
    default: 32,
    minimum: 0,
    maximum: 1048576,
    description: 'MiB of large request bodies (256 KiB or more) whose requests are in progress at once: read, queued or evaluated. A body past it waits unread in its connection, first come first served (small bodies never wait; a body larger than this is read once no other large one is in progress; a chunked body, of unknown length, takes its turn once 256 KiB of it have arrived, in a line of its own where it counts as `BODY_LIMIT_MB` (so one at a time, holding up no body that declares its length), and one that stalls gets 408 `RECEIVE_TIMEOUT` within seconds); a body that would take the line of waiting bodies past `QUEUE_MAX_MB` gets 503 `OVERLOADED` with `Retry-After` at once, before its body is read (the rest is read and dropped after the answer; an empty line takes any body). gRPC request messages join the same line by the length in their prefix (a compressed one by the most it could inflate to): one waiting is paused and counts in the line as at least the 8 MiB HTTP/2 flow-control window it may fill here (flow control holds the rest in the client), and one refused gets `UNAVAILABLE` with losshub-code `OVERLOADED`. The default matches the memory kept for reuse (32 MiB of bodies, and 96 MiB of shared memory for their decoded tensors, about 1.6 times the text of nested numbers), so that large requests under load reuse it instead of faulting in fresh memory: at 64 connections of [256,1000] nested bodies, one process answered about a quarter more requests a second and held some 130 MiB less resident memory than with no bound (`0`: no bound)'
  }),
  requestTimeoutMs: Type.Integer({
    default: 30000,
    minimum: 0,
    maximum: HOUR_MS,
    description: 'deadline of a loss request from the moment it is queued: queueing plus kernel time. Past it, 504 `DEADLINE_EXCEEDED`: a queued request leaves the queue; a running one is answered while its kernel runs on for the other requests of its batch, and a kernel is abandoned once every request in it is past its deadline (its worker is replaced at once; the old thread ends when ONNX Runtime returns, which cannot be interrupted) (`0`: no deadline)'
  }),
  maxEventLoopDelayMs: Type.Integer({
    default: 1000,
    minimum: 0,
    maximum: 60000,
    description: 'load shedding: 503 `OVERLOADED` (and `/readyz` 503) while the event loop\'s mean lag over the last second is larger (`0`: off). The lag is how late a 10 ms timer fires, so one stall counts as long as it lasted'
  }),
  maxRssMb: Type.Integer({ default: 0, minimum: 0, maximum: 1048576, description: 'load shedding: 503 `OVERLOADED` while the resident set is larger than this many MiB (`0`: off)' }),
  shutdownTimeoutMs: Type.Integer({ default: 10000, minimum: 1, maximum: HOUR_MS, description: 'on SIGTERM/SIGINT, the most time draining may take before the process exits anyway. A second before it (at most a fifth of it), every request still unanswered (queued, in a kernel, or with its body or gRPC message still arriving) gets 503 `SHUTTING_DOWN` with `Retry-After` (gRPC `UNAVAILABLE`), so that none is left to a cut connection; a kernel still running then is left unread, and if one still runs at the timeout the process ends by SIGKILL (logged first): a running kernel cannot be interrupted, and an ordinary exit while one runs would abort (SIGABRT)' }),
  receiveTimeoutMs: Type.Integer({
    default: 30000,
    minimum: 1000,
    maximum: HOUR_MS,
    description: 'most time to receive a whole request, headers and body; a slower or stalled upload gets 408 and its connection is closed (checked every second). A large body (256 KiB or more) is also watched once it may be read: one that stalls (nothing at all after a second, or no byte for 2 s) or arrives far too slowly to be complete in time (even at twice its best pace) gets 408 `RECEIVE_TIMEOUT` then, so that it does not hold up the bodies behind it (`BODIES_IN_PROGRESS_MB`). It bounds the arrival of a gRPC request too, a large message\'s pace included (`DEADLINE_EXCEEDED`, losshub-code `RECEIVE_TIMEOUT`), and how long an answer may wait to be taken by its client once it is sent: an HTTP reply not handed to the OS by then has its connection closed, a gRPC answer its stream cancelled (a client that never reads would otherwise hold its reply in memory). 30 s takes a full 64 MiB body at 18 Mbit/s'
  }),
  headersTimeoutMs: Type.Integer({
    default: 10000,
    minimum: 1000,
    atMost: 'receiveTimeoutMs',
    description: 'most time to receive a request\'s headers (the default is lowered to a smaller `RECEIVE_TIMEOUT_MS`)'
  }),
  keepAliveTimeoutMs: Type.Integer({
    default: 72000,
    minimum: 1000,
    maximum: HOUR_MS,
    description: 'how long an idle keep-alive connection stays open; keep it above your load balancer\'s idle timeout (often 60 s)'
  })
})

/** Service configuration, read from environment variables (CONFIG). */
export type Config = Static<typeof CONFIG>

/** The name of a setting. */
export type ConfigKey = keyof Config

/** The settings in declaration order: the order of the README's table and of error messages. */
export const KEYS = Object.keys(CONFIG.properties) as ConfigKey[]

/** The schema of one setting, with the keywords losshub reads from it. */
type Setting = TSchema & { default: number | string, minimum?: number, maximum?: number, atMost?: ConfigKey, anyOf?: Array<{ const: string }> }

const setting = (key: ConfigKey): Setting => CONFIG.properties[key] as Setting

/** The environment variable of each setting: its name in UPPER_SNAKE_CASE. */
export const VARS = Object.fromEntries(KEYS.map(key => [key, key.replace(/[A-Z]/g, c => `_${c}`).toUpperCase()])) as Record<ConfigKey, string>

/** The defaults every variable falls back to. */
export const DEFAULTS = Object.fromEntries(KEYS.map(key => [key, setting(key).default])) as Config

/** A setting that is out of its range or not of its type: the message names each variable at fault. */
export class ConfigError extends Error {}

const INTEGER = /^-?\d+$/
const DECIMAL = /^-?(\d+\.?\d*|\.\d+)$/

/**
 * Reads the configuration from `env` (unset or empty variables keep their defaults) and checks
 * every value against CONFIG. Throws one ConfigError listing every variable at fault, with
 * what it allows.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const values: Record<string, unknown> = { ...DEFAULTS }
  const given = new Set<ConfigKey>()
  const problems = new Map<ConfigKey, string>()
  for (const key of KEYS) {
    const raw = env[VARS[key]]?.trim()
    if (raw === undefined || raw === '') continue
    given.add(key)
    const value = parse(setting(key), raw)
    if (value !== undefined && Value.Check(setting(key), value)) values[key] = value
    else problems.set(key, `must be ${allowed(key)}; got ${JSON.stringify(raw)}`)
  }
  // a bound naming another setting, once every value is read
  for (const key of KEYS) {
    const other = setting(key).atMost
    if (other === undefined || problems.has(key) || (values[key] as number) <= (values[other] as number)) continue
    // a default yields to it (HEADERS_TIMEOUT_MS to a lower RECEIVE_TIMEOUT_MS); a value given does not
    if (!given.has(key)) values[key] = values[other]
    else problems.set(key, `must be ${allowed(key, values)}; got ${JSON.stringify(env[VARS[key]]?.trim())}`)
  }
  const faults = KEYS.filter(key => problems.has(key)).map(key => `${VARS[key]} ${problems.get(key) as string}`)
  if (faults.length > 0) throw new ConfigError(['invalid configuration:', ...faults].join('\n  '))
  return values as Config
}

/** A variable's text as its setting's type: a number for Integer and Number (undefined when it is none), else the text. */
function parse (schema: Setting, raw: string): unknown {
  if (schema[Kind] === 'Integer') return INTEGER.test(raw) ? Number(raw) : undefined
  if (schema[Kind] === 'Number') return DECIMAL.test(raw) ? Number(raw) : undefined
  return raw
}

/**
 * What a setting allows, in words: "an integer from 1 to 65536", "one of a, b", "any text". A
 * bound naming another setting shows that setting's variable, and its value when `values` are given.
 */
export function allowed (key: ConfigKey, values?: Record<string, unknown>): string {
  const s = setting(key)
  if (s.anyOf !== undefined) return `one of ${s.anyOf.map(m => m.const).join(', ')}`
  if (s[Kind] === 'String') return 'any text'
  const upper = s.atMost === undefined ? String(s.maximum) : `${VARS[s.atMost]}${values === undefined ? '' : ` (${String(values[s.atMost])})`}`
  return `${s[Kind] === 'Integer' ? 'an integer' : 'a number'} from ${String(s.minimum)} to ${upper}`
}

/** Number of CPUs this process may use (respects container CPU limits where Node can see them). */
export function cpuCount (): number { return os.availableParallelism() }
