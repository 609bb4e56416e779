import { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { fail, LosshubError } from '../../errors'
import { errorBody } from '../../http/errors'
import { type LossDef } from '../../losses/loss'
import { prepare } from '../../kernels/prepare'
import { type Batcher } from '../../batching/batcher'
import { notReady, type Readiness } from '../../routes/health'
import { described } from '../../../schemas/responses'
import {
  type V2InferenceRequestJson, V2InferenceRequest, V2InferenceResponse, V2InferHeaders, v2InferErrorResponses, V2ModelMetadata, V2ModelParams,
  V2ModelReady, v2NotReadyResponse, v2Schemas, V2ServerLive, V2ServerMetadata, V2ServerReady, v2UnknownModelResponse, V2VersionParams
} from '../../../schemas/v2'
import { version } from '../../../package.json'
import { binaryTail, v2BodyParser } from './body'
import { v2ErrorPayload } from './errors'
import { EXTENSIONS, modelMetadata } from './metadata'
import { type OptionsCheck, optionsSchema, tensorNames, translateRequest } from './request'
import { inferResponse, type V2Answer } from './response'

/** What the V2 routes need from the app. */
export interface V2Options {
  losses: readonly LossDef[]
  batcher: Batcher
  maxElements?: number
  /** The server's deadline (REQUEST_TIMEOUT_MS; 0: none): a request's `timeout` parameter may only shorten it. */
  requestTimeoutMs: number
  /** The readiness of `GET /readyz`, shared by the V2 probes. */
  readiness: Readiness
}

const TAG = ['open-inference']

/**
 * The Open Inference Protocol (KServe V2) over REST under /v2, with Triton's binary tensor data
 * extension: every loss is a model. A thin translator: requests become `POST /loss/{name}`
 * bodies for the same prepare() and batcher, errors the protocol's `{"error"}` body.
 */
export async function v2Routes (app: FastifyInstance, opts: V2Options): Promise<void> {
  await app.register(async v2 => { await routes(v2, opts) }, { prefix: '/v2' })
}

async function routes (app: FastifyInstance, opts: V2Options): Promise<void> {
  const byName = new Map(opts.losses.map(d => [d.name, d]))
  const names = [...byName.keys()].join(', ')
  const metadata = new Map(opts.losses.map(d => [d.name, modelMetadata(d)]))
  const schemas = new Map(opts.losses.map(d => [d.name, optionsSchema(d)]))
  const modelOf = (model: string, ver?: string): LossDef => {
    const def = byName.get(model) ?? fail('UNKNOWN_LOSS', `model '${model}' is not served; known models: ${names}`)
    if (ver !== undefined && ver !== '1') fail('NOT_FOUND', `model '${model}' has no version '${ver}'; its only version is 1`)
    return def
  }
  const ready = (): void => {
    const why = notReady(opts.readiness)
    if (why !== undefined) throw new LosshubError(why[0], why[1], 1)
  }

  for (const s of v2Schemas) app.addSchema(s)
  v2BodyParser(app)
  // bodies are written with JSON.stringify: an error body keeps every field until onSend rewrites it
  app.setSerializerCompiler(() => data => JSON.stringify(data))
  app.addHook('onSend', async (_request, reply, payload) => reply.statusCode >= 400 && typeof payload === 'string' ? v2ErrorPayload(payload) : payload)
  // inference sheds load as POST /loss/* does (src/plugins/pressure.ts), on the same decision
  app.addHook('onRequest', async request => {
    if (request.method === 'POST' && opts.readiness.overloaded()) throw new LosshubError('OVERLOADED', 'overloaded: shedding load; retry', 1)
  })
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}; see GET /docs`)))

  app.get('/', {
    prefixTrailingSlash: 'no-slash',
    schema: {
      operationId: 'v2ServerMetadata',
      summary: 'Server metadata: name, version and protocol extensions.',
      description: 'Open Inference Protocol server metadata. `binary_tensor_data` is Triton\'s binary tensor data extension; `parameters` means loss options travel in request parameters.',
      tags: TAG,
      response: { 200: described(V2ServerMetadata, 'The server\'s name, version and extensions.') }
    }
  }, async () => ({ name: 'losshub', version, extensions: EXTENSIONS }))

  app.get('/health/live', {
    schema: {
      operationId: 'v2ServerLive',
      summary: 'Liveness, as GET /healthz.',
      description: 'Open Inference Protocol liveness: 200 while the process serves.',
      tags: TAG,
      response: { 200: described(V2ServerLive, 'The process serves.') }
    }
  }, async () => ({ live: true }))

  app.get('/health/ready', {
    schema: {
      operationId: 'v2ServerReady',
      summary: 'Readiness, as GET /readyz.',
      description: 'Open Inference Protocol readiness: 200 once every kernel is loaded; 503 while starting, draining or shedding load.',
      tags: TAG,
      response: { 200: described(V2ServerReady, 'Every model is ready.'), 503: v2NotReadyResponse }
    }
  }, async () => {
    ready()
    return { ready: true }
  })

  for (const versioned of [false, true]) {
    const base = versioned ? '/models/:model/versions/:version' : '/models/:model'
    const params = versioned ? V2VersionParams : V2ModelParams
    const which = versioned ? 'Version' : ''
    const of = (request: FastifyRequest): LossDef => {
      const p = request.params as { model: string, version?: string }
      return modelOf(p.model, versioned ? p.version : undefined)
    }

    app.get(base, {
      schema: {
        operationId: `v2Model${which}Metadata`,
        summary: `Model metadata${versioned ? ' of version 1' : ''}: a loss's inputs and outputs.`,
        description: 'The loss\'s tensor arguments as inputs (datatype, and -1 for dims of any size), `loss` and its gradients as outputs. Options are request parameters; `GET /loss/{name}` lists them.',
        tags: TAG,
        params,
        response: { 200: described(V2ModelMetadata, 'The model\'s inputs and outputs.'), 404: v2UnknownModelResponse }
      }
    }, async request => metadata.get(of(request).name))

    app.get(`${base}/ready`, {
      schema: {
        operationId: `v2Model${which}Ready`,
        summary: `Model readiness${versioned ? ' of version 1' : ''}, as GET /readyz.`,
        description: 'Every model is ready once the server is: 200 once every kernel is loaded; 503 while starting, draining or shedding load.',
        tags: TAG,
        params,
        response: { 200: described(V2ModelReady, 'The model is ready.'), 404: v2UnknownModelResponse, 503: v2NotReadyResponse }
      }
    }, async request => {
      const def = of(request)
      ready()
      return { name: def.name, ready: true }
    })

    app.post(`${base}/infer`, {
      schema: {
        operationId: `v2Infer${which}`,
        summary: `Inference${versioned ? ' with version 1' : ''}: evaluate a loss (and its gradients).`,
        description: 'Inputs are the loss\'s tensor arguments by name (FP32, FP64, INT32, INT64), parameters its options, `reduction` and `grad`; outputs `loss` and `grad_<argument>`. Values and checks are those of `POST /loss/{name}`. Binary form (Triton\'s binary tensor data extension): the JSON header, its length in `Inference-Header-Content-Length`, then each binary input\'s raw little-endian bytes; outputs with `binary_data` (or all, with `binary_data_output`) come back the same way.',
        tags: TAG,
        params,
        headers: V2InferHeaders,
        body: Type.Ref(V2InferenceRequest),
        response: { 200: described(V2InferenceResponse, 'The outputs asked for, JSON or binary.'), ...v2InferErrorResponses }
      }
    }, async (request, reply) => {
      const def = of(request)
      const req = request.body as V2InferenceRequestJson
      const t = translateRequest(def, req, binaryTail(request), optionsCheck(request, schemas.get(def.name) as object, tensorNames(def)))
      const call = prepare(def, t.body, opts.maxElements)
      // a client that hangs up while queued is dropped from the queue
      const gone = new AbortController()
      reply.raw.once('close', () => { if (!reply.raw.writableEnded) gone.abort() })
      const server = opts.requestTimeoutMs > 0 ? opts.requestTimeoutMs * 1000 : Infinity
      const out = await opts.batcher.submit(call, gone.signal, t.timeoutUs === undefined ? undefined : Math.min(t.timeoutUs, server))
      return await send(reply, inferResponse(def, req.id, out, t.outputs, t.binaryAll))
    })
  }
}

/**
 * Checks a loss's options with its schema, compiled by the route's own validator (Fastify's
 * Ajv, with the app's settings: defaults filled in, no coercion). A failure goes to the app's
 * error handler as a validation error, located under `parameters` (or `inputs` for a missing tensor).
 */
function optionsCheck (request: FastifyRequest, schema: object, tensors: ReadonlySet<string>): OptionsCheck {
  const validate = request.compileValidationSchema(schema)
  return options => {
    if (validate(options) === true) return
    const validation = (validate.errors ?? []).map(e => {
      const missing = e.keyword === 'required' ? String(e.params.missingProperty) : undefined
      return { ...e, instancePath: (missing !== undefined && tensors.has(missing) ? '/inputs' : '/parameters') + e.instancePath }
    })
    throw Object.assign(new Error('invalid parameters'), { validation, validationContext: 'body', statusCode: 400 })
  }
}

/** Sends an inference answer: JSON, or the JSON header and the binary outputs after it. */
async function send (reply: FastifyReply, answer: V2Answer): Promise<FastifyReply> {
  const json = JSON.stringify(answer.json)
  if (answer.binary.length === 0) return await reply.type('application/json; charset=utf-8').send(json)
  const header = Buffer.from(json, 'utf8')
  return await reply.type('application/octet-stream').header('Inference-Header-Content-Length', String(header.length)).send(Buffer.concat([header, ...answer.binary]))
}
