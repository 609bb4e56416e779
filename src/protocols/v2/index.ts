import { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { fail } from '../../errors'
import { errorBody } from '../../http/errors'
import { releaseBody } from '../../http/raw-body'
import { type DocumentedBody } from '../../../schemas/loss-request'
import { described } from '../../../schemas/responses'
import {
  type V2InferenceRequestJson, V2InferenceRequest, V2InferenceRequestRead, V2InferenceResponse, V2InferHeaders, v2InferErrorResponses, V2ModelMetadata, V2ModelParams,
  V2ModelReady, v2NotReadyResponse, v2Schemas, V2ServerLive, V2ServerMetadata, V2ServerReady, v2UnknownModelResponse, V2VersionParams
} from '../../../schemas/v2'
import { type ReadAside } from '../../tensor/rows-ahead'
import { binaryTail, checkInputData, v2BodyParser } from './body'
import { v2ErrorPayload } from './errors'
import { ClientGone } from '../../batching/departure'
import { writeJson } from '../../tensor/json-writer'
import { inferResponse, type V2Answer } from './response'
import { type V2Service, type Validate } from './service'

export { type V2Options, V2Service } from './service'

const TAG = ['open-inference']

/**
 * The Open Inference Protocol (KServe V2) over REST under /v2, with Triton's binary tensor data
 * extension: every loss is a model. A thin translator onto `service` (shared with gRPC):
 * requests go to the same prepare() and batcher, errors become the protocol's `{"error"}` body.
 */
export async function v2Routes (app: FastifyInstance, opts: { service: V2Service, splitReads?: ReadAside }): Promise<void> {
  await app.register(async v2 => { await routes(v2, opts.service, opts.splitReads) }, { prefix: '/v2' })
}

async function routes (app: FastifyInstance, service: V2Service, splitReads: ReadAside | undefined): Promise<void> {
  for (const s of v2Schemas) app.addSchema(s)
  // every check of the service (REST's and gRPC's) compiles with this scope's validator: the app's Ajv settings, the V2 schemas
  app.addHook('onReady', async () => {
    const compiler = app.validatorCompiler ?? fail('INTERNAL', 'the V2 routes have no validator compiler')
    service.useCompiler(schema => compiler({ schema, method: 'POST', url: '/v2/models/:model/infer', httpPart: 'body' }) as Validate)
  })
  v2BodyParser(app, splitReads)
  // bodies are written with JSON.stringify: an error body keeps every field until onSend rewrites it
  app.setSerializerCompiler(() => data => JSON.stringify(data))
  app.addHook('onSend', async (_request, reply, payload) => reply.statusCode >= 400 && typeof payload === 'string' ? v2ErrorPayload(payload) : payload)
  // inference sheds load as POST /loss/* does (src/plugins/pressure.ts), on the same decision
  app.addHook('onRequest', async request => { if (request.method === 'POST') service.admit() })
  // an empty Content-Type says as little as none, which the protocol's clients send (tritonclient)
  app.addHook('onRequest', async request => { if (request.headers['content-type']?.trim() === '') delete request.headers['content-type'] })
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
  }, async () => ({ name: service.name, version: service.version, extensions: service.extensions }))

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
    service.ready()
    return { ready: true }
  })

  for (const versioned of [false, true]) {
    const base = versioned ? '/models/:model/versions/:version' : '/models/:model'
    const params = versioned ? V2VersionParams : V2ModelParams
    const which = versioned ? 'Version' : ''
    const of = (request: FastifyRequest): { model: string, version?: string } => {
      const p = request.params as { model: string, version?: string }
      return { model: p.model, version: versioned ? p.version : undefined }
    }

    app.get(base, {
      schema: {
        operationId: `v2Model${which}Metadata`,
        summary: `Model metadata${versioned ? ' of version 1' : ''}: a loss's inputs and outputs.`,
        description: 'The loss\'s tensor arguments as inputs (datatype, and -1 for dims of any size), `loss` and its gradients as outputs. Options are request parameters; `GET /loss/{name}` lists them. Model `composite` lists no inputs (each request\'s terms name them) and `total` as its one fixed output.',
        tags: TAG,
        params,
        response: { 200: described(V2ModelMetadata, 'The model\'s inputs and outputs.'), 404: v2UnknownModelResponse }
      }
    }, async request => {
      const { model, version } = of(request)
      return service.metadata(model, version)
    })

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
      const { model, version } = of(request)
      const def = service.model(model, version)
      service.ready()
      return { name: def.name, ready: true }
    })

    app.post(`${base}/infer`, {
      config: { documentedBody: Type.Ref(V2InferenceRequest) } satisfies DocumentedBody,
      schema: {
        operationId: `v2Infer${which}`,
        summary: `Inference${versioned ? ' with version 1' : ''}: evaluate a loss (and its gradients).`,
        description: 'Inputs are the loss\'s tensor arguments by name (FP32, FP64, INT32, INT64), parameters its options, `reduction` and `grad`; outputs `loss` and `grad_<argument>`. Values and checks are those of `POST /loss/{name}`. Model `composite` is `POST /losses`: parameter `terms` holds its terms as a JSON string, inputs are the tensors they bind by name, outputs `total`, one per term (its `name`, else `term<i>_<loss>`) and `grad_<input>`. Binary form (Triton\'s binary tensor data extension): the JSON header, its length in `Inference-Header-Content-Length`, then each binary input\'s raw little-endian bytes; outputs with `binary_data` (or all, with `binary_data_output`) come back the same way.',
        tags: TAG,
        params,
        headers: V2InferHeaders,
        // each input's data is read by the body parser, straight into numbers; the spec shows the full request
        body: V2InferenceRequestRead,
        response: { 200: described(V2InferenceResponse, 'The outputs asked for, JSON or binary.'), ...v2InferErrorResponses }
      },
      // an unknown model (or version) is 404 whatever the body, as POST /loss/{name} and gRPC answer it
      preValidation: async request => {
        const { model, version } = of(request)
        service.model(model, version)
      }
    }, async (request, reply) => {
      checkInputData(request.body as V2InferenceRequestJson)
      const tail = binaryTail(request)
      // a client that hangs up while queued is dropped from the queue
      const gone = ClientGone.of(reply.raw)
      try {
        const result = await service.infer({ ...of(request), request: request.body as V2InferenceRequestJson, raw: tail === undefined ? undefined : { tail }, signal: gone })
        return await send(reply, inferResponse(result.def, result.id, result.outputs))
      } finally {
        // the kernel has run (or never will): the binary tensors' memory serves the next body
        releaseBody(request)
      }
    })
  }
}

/** Sends an inference answer: JSON, or the JSON header and the binary outputs after it. */
async function send (reply: FastifyReply, answer: V2Answer): Promise<FastifyReply> {
  const header = writeJson(answer.json)
  if (answer.binary.length === 0) return await reply.type('application/json; charset=utf-8').send(header)
  return await reply.type('application/octet-stream').header('Inference-Header-Content-Length', String(header.length)).send(Buffer.concat([header, ...answer.binary]))
}
