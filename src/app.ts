import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { type Config, cpuCount, DEFAULTS } from './config'
import { errorBody, errorHandler } from './http/errors'
import { clientErrors, continueWithin, expectationFailed, frameworkErrors, refuseConnect, requireHost } from './http/framework-errors'
import { closeAfterUpgradeRequest } from './http/upgrade-requests'
import { closeQueuedReplies } from './http/queued-replies'
import { jsonBodyParser } from './http/json-body'
import { refuseContentEncoding } from './http/content-encoding'
import { admitBodies, BodyAdmission } from './http/body-admission'
import { sendDeadline } from './http/send-deadline'
import { SMALLEST_KEPT_BODY } from './http/body-memory'
import { LOSSES } from './losses'
import { type LossDef } from './losses/loss'
import { prepare } from './kernels/prepare'
import { type Limits } from './kernels/admission'
import { SessionCache } from './kernels/session-cache'
import { type Executor, InProcessExecutor } from './kernels/executor'
import { WorkerPool } from './kernels/worker-pool'
import { RowsAside } from './tensor/rows-ahead'
import { Batcher } from './batching/batcher'
import { createMetrics, type Metrics } from './metrics'
import { observability } from './plugins/observability'
import { clusterMetrics } from './cluster'
import { pressure } from './plugins/pressure'
import { exampleBody, lossRoutes } from './routes/loss'
import { healthRoutes } from './routes/health'
import { v2Routes, V2Service } from './protocols/v2'
import { GrpcFrontDoor } from './protocols/v2/grpc'
import { v2ErrorPayload } from './protocols/v2/errors'
import { compositeRoutes } from './routes/composite'
import { tensorSchemas } from '../schemas/tensor'
import { ErrorResponse } from '../schemas/error'
import { LICENSE, portableBounds, SERVERS, TAGS } from '../schemas/document'
import { CatalogArg, CatalogEntry, Catalog } from '../schemas/catalog'
import { AnyLossRequest, type DocumentedBody, LossResponse } from '../schemas/loss-request'
import { ANNOTATIONS } from '../schemas/enum'
import { version } from '../package.json'

/** What `buildApp` adds to the Fastify instance. */
export interface Losshub {
  /** Resolves once every loss's example kernels are loaded (readiness). */
  warmed: Promise<void>
  batcher: Batcher
  metrics: Metrics
  /** The Open Inference Protocol over gRPC: not listening until `listen` (src/server.ts binds GRPC_PORT); closed with the app. */
  grpc: GrpcFrontDoor
  /** Set on SIGTERM: readiness fails (src/shutdown.ts). */
  draining: boolean
  /** Set once draining has let in what was on the wire: new loss requests get 503. */
  refusing: boolean
  /** When the last POST arrived (ms since epoch), and how many are in progress: draining waits for a quiet moment. */
  lastRequestAt: number
  active: number
  /** The POSTs in progress (received, not yet answered): a shutdown's last word answers those whose body still arrives. */
  posts: Set<{ request: FastifyRequest, reply: FastifyReply }>
  /** When draining must have closed everything (ms since epoch), so that the process exits before SHUTDOWN_TIMEOUT_MS; undefined until a drain begins. */
  closeBy?: number
  /** Kernel worker threads inside a kernel now (Executor.threadsInKernels): an exit must not stop them (src/server.ts). */
  threadsInKernels: () => number
}

declare module 'fastify' {
  interface FastifyInstance { losshub: Losshub }
}

/** Options for tests and embedding; the server passes only the config. */
export interface AppOptions {
  losses?: readonly LossDef[]
  logger?: boolean
  /** Under node:cluster: `GET /metrics` answers for the whole cluster (aggregated by the primary). */
  clusterMetrics?: boolean
}

/** Builds the losshub app (not listening): routes, schemas, error mapping, kernels. */
export async function buildApp (config: Partial<Config> = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const cfg: Config = { ...DEFAULTS, ...config }
  const losses = options.losses ?? LOSSES
  const app = Fastify({
    logger: options.logger === false ? false : { level: cfg.logLevel },
    logController: new OneLinePerRequest(),
    bodyLimit: Math.round(cfg.bodyLimitMb * 1024 * 1024),
    // a stalled or trickling upload is answered 408 and closed once receiving it has taken
    // RECEIVE_TIMEOUT_MS (its headers: HEADERS_TIMEOUT_MS); Node checks every second, not every 30 s
    requestTimeout: cfg.receiveTimeoutMs,
    keepAliveTimeout: cfg.keepAliveTimeoutMs,
    // a missing Host is refused below (`requireHost`), in the coded body Node's own 400 lacks
    http: { requestTimeout: cfg.receiveTimeoutMs, headersTimeout: cfg.headersTimeoutMs, connectionsCheckingInterval: 1000, requireHostHeader: false },
    // what the router and Node's parser refuse before any route runs, coded as every other error
    frameworkErrors: frameworkErrors(errorForm),
    clientErrorHandler: clientErrors(errorForm),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // `/v2/` is `/v2` (the protocol's own OpenAPI file lists the former), and so for every route
    routerOptions: { ignoreTrailingSlash: true },
    // no regex scan of every body for "__proto__"/"constructor" keys (costly on megabyte
    // bodies): the body reader refuses them as it reads (src/tensor/json-reader.ts)
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    // verbose: an error carries the value it refused, so that a non-finite number is named as one (src/http/errors.ts)
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, verbose: true, keywords: ANNOTATIONS } }
  }).withTypeProvider<TypeBoxTypeProvider>()
  // an Expect other than 100-continue: Node's own 417 has no body
  app.server.on('checkExpectation', expectationFailed(errorForm))
  // Expect: 100-continue with a body over the limit: 413 before the body is sent
  app.server.on('checkContinue', continueWithin(app.server, app.initialConfig.bodyLimit ?? Infinity, errorForm))
  // CONNECT: Node closes the connection without an answer when no one listens
  app.server.on('connect', refuseConnect(errorForm))
  // pipelined replies still queued when their connection closes are closed too
  app.server.on('request', closeQueuedReplies)
  // an Upgrade request (not taken): the connection closes after its answer, Node having dropped what came behind it
  app.server.on('request', closeAfterUpgradeRequest)
  // a client that ends its side after sending (half-close) still gets the answers to the requests
  // it sent whole, the connection closing after the last (Node's default, false, drops those in
  // progress): node:http's own switch, read as each connection ends
  ;(app.server as typeof app.server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true

  const settings = { intraOpNumThreads: cfg.ortIntraOpThreads, interOpNumThreads: cfg.ortInterOpThreads }
  const executor: Executor = cfg.kernelWorkers > 0
    ? new WorkerPool({ short: cfg.kernelWorkers, long: cfg.longKernelWorkers }, settings, cfg.sessionCacheSize, {
      onWorkerLost: (lane, reason) => app.log.warn({ lane, reason }, 'kernel worker replaced'),
      inlineElements: cfg.inlineKernelElements,
      // a lone call large enough for the long lane may take the cores other processes leave free
      wide: { threads: cfg.wideKernelThreads > 0 ? cfg.wideKernelThreads : cpuCount(), elements: cfg.longKernelElements > 0 ? cfg.longKernelElements : Infinity },
      queued: () => batcher.queued
    })
    : new InProcessExecutor(new SessionCache(settings, cfg.sessionCacheSize))
  // large bodies are read a few at a time (src/http/body-admission.ts); the waiting line shares QUEUE_MAX_MB's bound
  const mib = (n: number): number => n > 0 ? n * 2 ** 20 : Infinity
  const bodies = new BodyAdmission(mib(cfg.bodiesInProgressMb), SMALLEST_KEPT_BODY, mib(cfg.queueMaxMb))
  // bodies of unknown length (chunked), each counted as the body limit: a line of their own, one
  // at a time (none with BODIES_IN_PROGRESS_MB 0), so that they hold up no body that declares its length
  const chunked = new BodyAdmission(cfg.bodiesInProgressMb > 0 ? mib(cfg.bodyLimitMb) : Infinity, SMALLEST_KEPT_BODY, mib(cfg.queueMaxMb))
  // an idle kernel worker may read the second half of a large tensor of JSON numbers while the event loop reads the first
  const splitReads = executor instanceof WorkerPool ? new RowsAside(job => executor.lend({ rows: job }), () => executor.canLend()) : undefined
  const metrics = createMetrics(() => batcher.queued, {
    executor: () => executor.stats?.(),
    deadlineExceeded: () => batcher.stats.timedOut,
    queuedBytes: () => batcher.queuedArgumentBytes
  }, () => sumBytes(bodies.bytes, chunked.bytes), splitReads?.outcomes)
  const batcher = new Batcher(executor, {
    maxSize: cfg.batchMaxSize,
    maxElements: cfg.batchMaxElements,
    maxDelayUs: cfg.batchMaxDelayUs,
    maxQueue: cfg.queueMaxRequests,
    maxQueueBytes: cfg.queueMaxMb > 0 ? cfg.queueMaxMb * 2 ** 20 : undefined,
    timeoutUs: cfg.requestTimeoutMs > 0 ? cfg.requestTimeoutMs * 1000 : undefined,
    lanes: { longSteps: cfg.longKernelSteps, longElements: cfg.longKernelElements }
  }, { observer: metrics.observeBatch })
  let ready = false
  const warmed = warm(losses, batcher, cfg.kernelWorkers > 0 ? cfg.inlineKernelElements : 0).then(() => { ready = true })
  const readiness = { ready: () => ready, draining: () => app.losshub.draining, overloaded: () => app.hasDecorator('isUnderPressure') && app.isUnderPressure() }
  const limits: Limits = { maxElements: cfg.maxElements, maxSteps: cfg.maxSteps }
  // one Open Inference Protocol service behind both of its front doors, REST (/v2) and gRPC
  const v2 = new V2Service({ losses, batcher, limits, requestTimeoutMs: cfg.requestTimeoutMs, readiness })
  const grpc = new GrpcFrontDoor({
    service: v2,
    maxMessageBytes: Math.round(cfg.bodyLimitMb * 1024 * 1024),
    receiveTimeoutMs: cfg.receiveTimeoutMs,
    bodies,
    metrics,
    log: app.log,
    // the same bookkeeping as the onRequest hook below: draining waits for gRPC calls too
    inFlight: {
      refusing: () => app.losshub.refusing,
      begin: () => { app.losshub.lastRequestAt = Date.now(); app.losshub.active++ },
      end: () => { app.losshub.active-- }
    }
  })
  app.decorate('losshub', {
    warmed,
    batcher,
    metrics,
    grpc,
    draining: false,
    refusing: false,
    lastRequestAt: 0,
    active: 0,
    posts: new Set<{ request: FastifyRequest, reply: FastifyReply }>(),
    threadsInKernels: () => executor.threadsInKernels?.() ?? 0
  })

  app.addHook('onRequest', requireHost)
  app.addHook('onSend', async (request, reply) => { void reply.header('x-request-id', request.id) })
  app.addHook('onSend', sendDeadline(cfg.receiveTimeoutMs, mib(cfg.queueMaxMb)))
  // evaluations in progress (received, not yet answered): draining waits for them (src/shutdown.ts)
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return
    const state = app.losshub
    // draining: a keep-alive connection ends with this answer, so that its client sends the next
    // request on a new one (to another instance once this one has stopped listening), not on one
    // this one may close as the request arrives
    if (state.draining) void reply.header('connection', 'close')
    if (state.refusing) return await reply.code(503).header('Retry-After', '1').send(errorBody('SHUTTING_DOWN', 'draining: this instance is shutting down; retry'))
    state.lastRequestAt = Date.now()
    state.active++
    const post = { request, reply }
    state.posts.add(post)
    reply.raw.once('close', () => { state.active--; state.posts.delete(post) })
  })
  app.removeContentTypeParser(['text/plain']) // JSON only: anything else is a 415
  jsonBodyParser(app, splitReads)
  app.addHook('preParsing', refuseContentEncoding) // uncompressed bodies only: anything else is a 415
  app.addHook('preParsing', admitBodies(bodies, chunked, cfg.receiveTimeoutMs))

  const tensorArgs = new Map(losses.map(d => [`/loss/${d.name}`, new Set([...d.args.map(a => a.name), 'grad_output'])]))
  app.setErrorHandler(errorHandler(url => tensorArgs.get(url) ?? new Set()))
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}; see GET /docs`)))

  for (const s of [...tensorSchemas, ErrorResponse, CatalogArg, CatalogEntry, Catalog, LossResponse, AnyLossRequest]) app.addSchema(s)
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'losshub',
        version,
        license: LICENSE,
        description: 'Evaluates machine-learning loss functions and their gradients exactly as PyTorch does (torch.nn.functional and the references named in the catalog, GET /loss). Error codes: docs/errors.md in the repository.'
      },
      servers: SERVERS,
      tags: TAGS
    },
    // on a copy: the schema objects are also the validators' (whose JSON Schema bounds stay numeric)
    transformObject: doc => portableBounds(structuredClone('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject)),
    // a route that validates a reduced body (decoded tensors left out) documents its full one
    transform: ({ schema, url, route }) => {
      const documented = (route.config as DocumentedBody | undefined)?.documentedBody
      return { schema: documented === undefined ? schema : { ...schema, body: documented }, url }
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(pressure, { maxEventLoopDelayMs: cfg.maxEventLoopDelayMs, maxRssMb: cfg.maxRssMb })
  await app.register(observability, { metrics, aggregate: options.clusterMetrics === true ? clusterMetrics(metrics.registry) : undefined, isModel: name => v2.has(name) })
  await app.register(healthRoutes, {
    readiness: { ready: () => ready, draining: () => app.losshub.draining, overloaded: () => app.hasDecorator('isUnderPressure') && app.isUnderPressure() }
  })
  await app.register(lossRoutes, { losses, batcher, limits })
  await app.register(v2Routes, { service: v2, splitReads })
  await app.register(compositeRoutes, { losses, batcher, limits })
  app.addHook('onClose', async () => {
    await warmed.catch(() => {}) // a close during start-up lets the warm-up finish first
    // calls in progress finish first, until draining must have closed (or within half the
    // shutdown timeout): a client that never reads its answer does not make the exit time out
    const closeBy = app.losshub.closeBy
    await grpc.close(closeBy !== undefined ? Math.max(0, closeBy - Date.now()) : cfg.shutdownTimeoutMs / 2)
    await batcher.drain()
    await executor.close()
  })
  return app
}

/** Two lines' bytes in progress and waiting, added up. */
const sumBytes = (a: BodyAdmission['bytes'], b: BodyAdmission['bytes']): BodyAdmission['bytes'] => ({ inProgress: a.inProgress + b.inProgress, waiting: a.waiting + b.waiting })

/** An error body in the form of the URL's route family (V2's own under /v2). */
const errorForm = (url: string, payload: string): string => url.startsWith('/v2') ? v2ErrorPayload(payload) : payload

/** One log line per request, when it completes, with its id, route, status and time. */
class OneLinePerRequest extends LogController {
  override incomingRequest (): void {}
  override requestCompleted (_error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    request.log.info({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'request')
  }
}

/** The warm-up's deadline: none, since its first runs wait for the kernel workers to start. */
const WARM_UP = { us: Infinity, name: 'the warm-up' }

/**
 * Runs each loss's example, with and without gradients, so its kernels are loaded before
 * readiness, on a kernel worker: as a call past the inline bound (`inlineElements`), since the
 * event loop builds its own session of a kernel only once the kernel is called tiny there
 * (worker-pool.ts), not for every kernel.
 */
async function warm (losses: readonly LossDef[], batcher: Batcher, inlineElements: number): Promise<void> {
  for (const def of losses) {
    for (const grad of [false, true]) {
      const call = prepare(def, { ...exampleBody(def), grad })
      await batcher.submit({ ...call, cost: { ...call.cost, elements: Math.max(call.cost.elements, inlineElements + 1) } }, undefined, WARM_UP)
      // with no kernel workers, runs on the event loop resolve as microtasks, which starve timers:
      // give the event loop a turn, so that the lag monitor (load shedding) sees many short
      // stalls, not one of the whole warm-up
      await new Promise(resolve => setImmediate(resolve))
    }
  }
}
