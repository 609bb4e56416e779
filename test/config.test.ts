import { spawnSync } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { Kind } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { CONFIG, ConfigError, DEFAULTS, KEYS, loadConfig, VARS } from '../src/config'

/** The message loadConfig refuses `env` with ('' when it accepts it). */
const refusal = (env: Record<string, string>): string => {
  try { loadConfig(env); return '' } catch (err) { return err instanceof ConfigError ? err.message : `not a ConfigError: ${String(err)}` }
}

t.test('no variables: the defaults; every default is itself an allowed value', async t => {
  t.same(loadConfig({}), DEFAULTS)
  t.ok(Value.Check(CONFIG, DEFAULTS), 'the defaults satisfy the schema')
  const asText = Object.fromEntries(KEYS.map(k => [VARS[k], String(DEFAULTS[k])]))
  t.same(loadConfig(asText), DEFAULTS)
})

t.test('the variables operators set: every setting has one, with a default and a description', async t => {
  // typed out: renaming a setting in the code must not rename the variable under a deployment
  t.same(Object.values(VARS), [
    'PORT', 'GRPC_PORT', 'HOST', 'BODY_LIMIT_MB', 'MAX_ELEMENTS', 'MAX_STEPS', 'LOG_LEVEL', 'WORKERS', 'ALLOCATOR', 'KERNEL_WORKERS',
    'LONG_KERNEL_WORKERS', 'LONG_KERNEL_STEPS', 'LONG_KERNEL_ELEMENTS', 'ORT_INTRA_OP_THREADS',
    'ORT_INTER_OP_THREADS', 'SESSION_CACHE_SIZE', 'INLINE_KERNEL_ELEMENTS', 'WIDE_KERNEL_THREADS',
    'BATCH_MAX_SIZE', 'BATCH_MAX_ELEMENTS', 'BATCH_MAX_DELAY_US', 'QUEUE_MAX_REQUESTS', 'QUEUE_MAX_MB', 'BODIES_IN_PROGRESS_MB',
    'REQUEST_TIMEOUT_MS', 'MAX_EVENT_LOOP_DELAY_MS', 'MAX_RSS_MB', 'SHUTDOWN_TIMEOUT_MS', 'RECEIVE_TIMEOUT_MS',
    'HEADERS_TIMEOUT_MS', 'KEEP_ALIVE_TIMEOUT_MS'
  ])
  t.equal(VARS.grpcPort, 'GRPC_PORT')
  t.equal(VARS.ortIntraOpThreads, 'ORT_INTRA_OP_THREADS')
  for (const key of KEYS) {
    const s = CONFIG.properties[key] as { default?: unknown, description?: unknown, atMost?: unknown }
    t.not(s.default, undefined, `${VARS[key]} has a default`)
    t.ok(typeof s.description === 'string' && s.description.length > 0, `${VARS[key]} has a description`)
    // a bound naming another setting must name a numeric one
    if (s.atMost !== undefined) t.equal(typeof DEFAULTS[s.atMost as keyof typeof DEFAULTS], 'number', `${VARS[key]}'s atMost names a numeric setting`)
  }
})

t.test('values that would deadlock or make no sense are refused, naming the variable and the allowed range', async t => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ BATCH_MAX_SIZE: '0' }, 'BATCH_MAX_SIZE must be an integer from 1 to 65536; got "0"'],
    [{ QUEUE_MAX_REQUESTS: '0' }, 'QUEUE_MAX_REQUESTS must be an integer from 1 to 1000000; got "0"'],
    [{ BODY_LIMIT_MB: '0' }, 'BODY_LIMIT_MB must be a number from 0.001 to 500; got "0"'],
    [{ KERNEL_WORKERS: '65' }, 'KERNEL_WORKERS must be an integer from 0 to 64; got "65"'],
    [{ KERNEL_WORKERS: '-1' }, 'KERNEL_WORKERS must be an integer from 0 to 64; got "-1"'],
    [{ WORKERS: '1.5' }, 'WORKERS must be an integer from 0 to 256; got "1.5"'],
    [{ BATCH_MAX_SIZE: '1e3' }, 'BATCH_MAX_SIZE must be an integer from 1 to 65536; got "1e3"'],
    [{ PORT: '65536' }, 'PORT must be an integer from 0 to 65535; got "65536"'],
    [{ PORT: 'http' }, 'PORT must be an integer from 0 to 65535; got "http"'],
    [{ SESSION_CACHE_SIZE: '0' }, 'SESSION_CACHE_SIZE must be an integer from 1 to 1000000; got "0"'],
    [{ SHUTDOWN_TIMEOUT_MS: '0' }, 'SHUTDOWN_TIMEOUT_MS must be an integer from 1 to 3600000; got "0"'],
    [{ ORT_INTRA_OP_THREADS: '0' }, 'ORT_INTRA_OP_THREADS must be an integer from 1 to 256; got "0"'],
    [{ BODY_LIMIT_MB: 'NaN' }, 'BODY_LIMIT_MB must be a number from 0.001 to 500; got "NaN"'],
    [{ BODY_LIMIT_MB: 'Infinity' }, 'BODY_LIMIT_MB must be a number from 0.001 to 500; got "Infinity"'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"'],
    [{ RECEIVE_TIMEOUT_MS: '0' }, 'RECEIVE_TIMEOUT_MS must be an integer from 1000 to 3600000; got "0"'],
    [{ RECEIVE_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '6000' }, 'HEADERS_TIMEOUT_MS must be an integer from 1000 to RECEIVE_TIMEOUT_MS (5000); got "6000"']
  ]
  for (const [env, message] of cases) t.equal(refusal(env), `invalid configuration:\n  ${message}`, JSON.stringify(env))
})

t.test('every variable at fault is listed at once, in table order', async t => {
  t.equal(refusal({ PORT: '70000', BATCH_MAX_SIZE: '0', KERNEL_WORKERS: 'two' }), [
    'invalid configuration:',
    'PORT must be an integer from 0 to 65535; got "70000"',
    'KERNEL_WORKERS must be an integer from 0 to 64; got "two"',
    'BATCH_MAX_SIZE must be an integer from 1 to 65536; got "0"'
  ].join('\n  '))
})

t.test('accepted values: the bounds themselves, 0 where it means off or automatic, decimals, surrounding spaces', async t => {
  const cfg = loadConfig({ PORT: '0', BATCH_MAX_SIZE: '65536', BODY_LIMIT_MB: '0.5', WORKERS: ' 2 ', MAX_EVENT_LOOP_DELAY_MS: '0', KERNEL_WORKERS: '0', LOG_LEVEL: 'warn', HOST: '::', QUEUE_MAX_REQUESTS: '' })
  t.match(cfg, { port: 0, batchMaxSize: 65536, bodyLimitMb: 0.5, workers: 2, maxEventLoopDelayMs: 0, kernelWorkers: 0, logLevel: 'warn', host: '::' })
  t.equal(cfg.queueMaxRequests, DEFAULTS.queueMaxRequests, 'an empty variable keeps its default')
})

t.test('a default bounded by another setting yields to it; an explicit value does not', async t => {
  t.equal(loadConfig({ RECEIVE_TIMEOUT_MS: '5000' }).headersTimeoutMs, 5000, 'HEADERS_TIMEOUT_MS (default 10000) lowered to RECEIVE_TIMEOUT_MS')
  t.equal(loadConfig({ RECEIVE_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '5000' }).headersTimeoutMs, 5000)
})

t.test('every numeric setting: one step past either bound is refused with the variable\'s name', async t => {
  for (const key of KEYS) {
    const s = CONFIG.properties[key] as { [Kind]: string, minimum: number, maximum?: number, atMost?: keyof typeof DEFAULTS }
    if (s[Kind] !== 'Integer' && s[Kind] !== 'Number') continue
    const step = s[Kind] === 'Integer' ? 1 : 0.0001
    const max = s.atMost === undefined ? s.maximum as number : DEFAULTS[s.atMost] as number
    for (const [edge, past] of [[s.minimum, -step], [max, step]]) {
      t.match(refusal({ [VARS[key]]: String(edge + past) }), new RegExp(`^invalid configuration:\\n {2}${VARS[key]} must be `), `${VARS[key]}=${edge + past}`)
      t.equal(refusal({ [VARS[key]]: String(edge) }), '', `${VARS[key]}=${edge} is allowed`)
    }
  }
})

t.test('the server refuses a bad configuration at start-up: exit 1, the message on stderr', async t => {
  const entry = path.join(__dirname, '..', 'dist', 'src', 'server.js')
  const run = spawnSync(process.execPath, [entry], { env: { ...process.env, BATCH_MAX_SIZE: '0', PORT: '0' }, encoding: 'utf8', timeout: 30000 })
  t.equal(run.status, 1)
  t.equal(run.stderr.trim(), 'losshub: invalid configuration:\n  BATCH_MAX_SIZE must be an integer from 1 to 65536; got "0"')
  t.equal(run.stdout, '', 'nothing started')
})
