import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { type Config, DEFAULTS } from './config'
import { errorBody, errorHandler } from './http/errors'
import { LOSSES } from './losses'
import { type LossDef } from './losses/loss'
import { prepare } from './kernels/prepare'
import { SessionCache } from './kernels/session-cache'
import { type Executor, InProcessExecutor } from './kernels/executor'
import { WorkerPool } from './kernels/worker-pool'
import { Batcher } from './batching/batcher'
import { exampleBody, lossRoutes } from './routes/loss'
import { healthRoutes } from './routes/health'
import { tensorSchemas } from '../schemas/tensor'
import { ErrorResponse } from '../schemas/error'
import { CatalogArg, CatalogEntry, Catalog } from '../schemas/catalog'
import { LossResponse } from '../schemas/loss-request'
import { version } from '../package.json'

/** What `buildApp` adds to the Fastify instance. */
export interface Losshub {
  /** Resolves once every loss's example kernels are loaded (readiness). */
  warmed: Promise<void>
  batcher: Batcher
  draining: boolean
}

declare module 'fastify' {
  interface FastifyInstance { losshub: Losshub }
}

/** Options for tests and embedding; the server passes only the config. */
export interface AppOptions {
  losses?: readonly LossDef[]
  logger?: boolean
}

/** Builds the losshub app (not listening): routes, schemas, error mapping, kernels. */
export async function buildApp (config: Partial<Config> = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const cfg: Config = { ...DEFAULTS, ...config }
  const losses = options.losses ?? LOSSES
  const app = Fastify({
    logger: options.logger === false ? false : { level: cfg.logLevel },
    logController: new OneLinePerRequest(),
    bodyLimit: Math.round(cfg.bodyLimitMb * 1024 * 1024),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } }
  }).withTypeProvider<TypeBoxTypeProvider>()

  const settings = { intraOpNumThreads: cfg.ortIntraOpThreads, interOpNumThreads: cfg.ortInterOpThreads }
  const executor: Executor = cfg.kernelWorkers > 0
    ? new WorkerPool(cfg.kernelWorkers, settings, cfg.sessionCacheSize)
    : new InProcessExecutor(new SessionCache(settings, cfg.sessionCacheSize))
  const batcher = new Batcher(executor, {
    maxSize: cfg.batchMaxSize, maxElements: cfg.batchMaxElements, maxDelayUs: cfg.batchMaxDelayUs, maxQueue: cfg.queueMaxRequests
  })
  let ready = false
  const warmed = warm(losses, batcher).then(() => { ready = true })
  app.decorate('losshub', { warmed, batcher, draining: false })

  app.addHook('onSend', async (request, reply) => { void reply.header('x-request-id', request.id) })
  // Results are plain JSON (numbers, "NaN" strings, nested arrays): JSON.stringify is right and fast.
  app.removeContentTypeParser(['text/plain']) // JSON only: anything else is a 415
  app.setSerializerCompiler(() => data => JSON.stringify(data))

  const tensorArgs = new Map(losses.map(d => [`/loss/${d.name}`, new Set([...d.args.map(a => a.name), 'grad_output'])]))
  app.setErrorHandler(errorHandler(url => tensorArgs.get(url) ?? new Set()))
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}; see GET /docs`)))

  for (const s of [...tensorSchemas, ErrorResponse, CatalogArg, CatalogEntry, Catalog, LossResponse]) app.addSchema(s)
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'losshub',
        version,
        description: 'Evaluates machine-learning loss functions and their gradients exactly as PyTorch does. Contract: API.md; error codes: docs/errors.md.'
      },
      tags: [
        { name: 'regression' }, { name: 'classification' }, { name: 'ranking' }, { name: 'sequence' }, { name: 'segmentation' },
        { name: 'catalog' }, { name: 'operations' }
      ]
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(healthRoutes, { readiness: { ready: () => ready, draining: () => app.losshub.draining } })
  await app.register(lossRoutes, { losses, batcher })
  app.addHook('onClose', async () => {
    await batcher.drain()
    await executor.close()
  })
  return app
}

/** One log line per request, when it completes, with its id, route, status and time. */
class OneLinePerRequest extends LogController {
  override incomingRequest (): void {}
  override requestCompleted (_error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    request.log.info({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'request')
  }
}

/** Runs each loss's example, with and without gradients, so its kernels are loaded before readiness. */
async function warm (losses: readonly LossDef[], batcher: Batcher): Promise<void> {
  for (const def of losses) {
    for (const grad of [false, true]) await batcher.submit(prepare(def, { ...exampleBody(def), grad }))
  }
}
