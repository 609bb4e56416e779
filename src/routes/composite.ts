import { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { compositeSchemas, CompositeRequest, CompositeRequestWithoutTensors, CompositeResponse, termOptionsSchema } from '../../schemas/composite'
import { described, lossErrorResponses, errorResponse } from '../../schemas/responses'
import { type Batcher } from '../batching/batcher'
import { ClientGone } from '../batching/departure'
import { fail } from '../errors'
import { type AjvError, errorHandler, validationMessage } from '../http/errors'
import { type TensorRouteConfig } from '../http/json-body'
import { releaseBody, requestMemory } from '../http/raw-body'
import { type DocumentedBody } from '../../schemas/loss-request'
import { type CompositeBody, type OptionsValidator } from '../kernels/composite'
import { type Limits } from '../kernels/admission'
import { evaluateComposite } from '../batching/evaluate-composite'
import { writeJson } from '../tensor/json-writer'
import { type LossDef } from '../losses/loss'

/**
 * The error handler of the composite route: a schema error inside an entry of `tensors` is
 * INVALID_TENSOR, as one in a tensor argument of `POST /loss/{name}` is; any other (`tensors`
 * itself not an object, or empty) is an ordinary field's.
 */
function compositeErrorHandler (): ReturnType<typeof errorHandler> {
  const inTensor = errorHandler(() => new Set(['tensors']))
  const elsewhere = errorHandler(() => new Set())
  return async (err, request, reply) => {
    const at = (err as { validation?: AjvError[] }).validation?.[0]?.instancePath ?? ''
    return await (at.startsWith('/tensors/') ? inTensor : elsewhere)(err, request, reply)
  }
}

/** What compiles schemas with the app's validator: a route's request, or any protocol's stand-in for one. */
export interface SchemaCompiler { compileValidationSchema: (schema: object) => ((data: unknown) => boolean) & { errors?: unknown } }

/**
 * Validates terms' options with the request's own validator compiler (the app's Ajv and its
 * settings, defaults filled in), compiled once per loss; messages as for `POST /loss/{name}`.
 */
export function termOptionsValidator (request: SchemaCompiler): OptionsValidator {
  return (def, options) => {
    const validate = request.compileValidationSchema(termOptionsSchema(def))
    if (!validate(options)) {
      const [code, message] = validationMessage(validate.errors as AjvError[], new Set())
      fail(code, message)
    }
    return options
  }
}

/** `POST /losses`: several losses over shared tensors, their weighted total and its gradient. */
export async function compositeRoutes (app: FastifyInstance, opts: { losses: readonly LossDef[], batcher: Batcher, limits?: Limits }): Promise<void> {
  const losses = new Map(opts.losses.map(d => [d.name, d]))
  for (const s of compositeSchemas) app.addSchema(s)
  app.setErrorHandler(compositeErrorHandler()) // this plugin's routes only
  // the values of `tensors` arrive decoded (and checked) by the body reader
  // (src/http/json-body.ts); the schema checks the rest. The spec shows the full request.
  const config: DocumentedBody & TensorRouteConfig = { tensorKeys: new Set(), tensorMaps: new Set(['tensors']), documentedBody: Type.Ref(CompositeRequest) }
  app.post('/losses', {
    config,
    schema: {
      operationId: 'evaluateComposite',
      summary: 'Several losses over shared tensors: their values, weighted total and its gradient.',
      description: 'Each term binds a loss\'s tensor arguments to entries of `tensors` by name, with its own options, reduction and weight (default 1). ' +
        'One kernel computes every term, the weighted total and, with `grad`, the gradient of the total w.r.t. each tensor a term differentiates (summed over the terms). ' +
        'Each term is checked as `POST /loss/{name}` checks its body; error messages begin `terms[i] (name): `.',
      tags: ['composite'],
      body: CompositeRequestWithoutTensors,
      response: {
        200: described(CompositeResponse, 'Each term\'s value, the weighted total, and its gradients when `grad` is true.'),
        ...lossErrorResponses,
        400: errorResponse('Invalid call: malformed JSON, a missing or unknown field, a malformed tensor, a tensor name that is not an identifier or that no term uses, an argument bound to no tensor, a non-zero weight on a term with reduction `none`, or a term that `POST /loss/{name}` would refuse (the message then begins `terms[i] (name): `).'),
        404: errorResponse('A term names a loss that is not served: `message` lists the losses served.')
      }
    }
  }, async (request, reply) => {
    try {
      // a client that hangs up while queued is dropped from the queue
      const gone = ClientGone.of(reply.raw)
      const result = await evaluateComposite(request.body as CompositeBody, {
        losses, batcher: opts.batcher, limits: opts.limits, validateOptions: termOptionsValidator(request), memory: size => requestMemory(request, size)
      }, gone)
      // written straight into a Buffer from the output arrays, as for /loss (src/tensor/json-writer.ts)
      return await reply.type('application/json; charset=utf-8').send(writeJson(result))
    } finally {
      // the kernels have run (or never will): the tensors' memory serves the next body
      releaseBody(request)
    }
  })
}
