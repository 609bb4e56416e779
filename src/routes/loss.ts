import { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { Catalog, CatalogEntry, type CatalogEntryJson } from '../../schemas/catalog'
import { type DocumentedBody, lossByNameSchema, lossRequestSchema, LossResponse, pascal, withoutTensors } from '../../schemas/loss-request'
import { described, lossErrorResponses, unknownLossResponse } from '../../schemas/responses'
import { fail } from '../errors'
import { type LossDef } from '../losses/loss'
import { evaluate } from '../batching/evaluate'
import { type TensorRouteConfig } from '../http/json-body'
import { releaseBody, requestMemory } from '../http/raw-body'
import { writeJson } from '../tensor/json-writer'
import { type Batcher } from '../batching/batcher'
import { ClientGone } from '../batching/departure'
import { prepare } from '../kernels/prepare'
import { type Limits } from '../kernels/admission'

const errors = lossErrorResponses

/** The catalog entry of a loss, derived from its declaration. */
export function catalogEntry (def: LossDef): CatalogEntryJson {
  return {
    name: def.name,
    summary: def.summary,
    category: def.category,
    reference: def.reference,
    args: def.args.map(a => ({ name: a.name, kind: a.kind, optional: a.optional === true, grad: a.grad === true, doc: a.doc })),
    options: JSON.parse(JSON.stringify(def.options)),
    reductions: [...def.reductions],
    example: def.example
  }
}

/** The request body of a loss's example with every default filled in, as validation would. */
export function exampleBody (def: LossDef): Record<string, unknown> {
  const body: Record<string, unknown> = structuredClone(def.example)
  const props = lossRequestSchema(def).properties as Record<string, { default?: unknown }>
  for (const [k, s] of Object.entries(props)) if (body[k] === undefined && s.default !== undefined) body[k] = s.default
  return body
}

/** The body keys that hold a loss's tensors: its arguments and the upstream gradient. */
export function tensorKeysOf (def: LossDef): ReadonlySet<string> {
  return new Set([...def.args.map(a => a.name), 'grad_output'])
}

/** `POST /loss/<name>` for every registered loss, plus the catalog routes. */
export async function lossRoutes (app: FastifyInstance, opts: { losses: readonly LossDef[], batcher: Batcher, limits?: Limits }): Promise<void> {
  const byName = new Map(opts.losses.map(d => [d.name, d]))
  const names = [...byName.keys()].join(', ')
  const unknown = (name: string): never => fail('UNKNOWN_LOSS', `loss '${name}' is not served; known losses: ${names}`)

  for (const def of opts.losses) {
    const body = lossRequestSchema(def)
    app.addSchema(body)
    const tensorKeys = tensorKeysOf(def)
    const config: DocumentedBody & TensorRouteConfig = { tensorKeys, documentedBody: Type.Ref(body) }
    app.post(`/loss/${def.name}`, {
      config,
      schema: {
        operationId: `evaluate${pascal(def.name)}`,
        summary: `${def.name}: ${def.summary}`,
        description: `Reference: \`${def.reference}\`. Reductions: ${def.reductions.join(', ')}.`,
        tags: [def.category],
        // the tensors arrive decoded by the body reader (src/http/json-body.ts), which checked
        // them; the schema checks the rest. The spec shows the full request (config.documentedBody).
        body: withoutTensors(body, tensorKeys),
        response: { 200: described(LossResponse, `The ${def.name} loss, and its gradients when \`grad\` is true.`), ...errors }
      }
    }, async (request, reply) => {
      try {
        // conversions to the kernel's dtype (nested floats to float32) go into the request's reused memory too
        const call = prepare(def, request.body as Record<string, unknown>, opts.limits, size => requestMemory(request, size))
        // a client that hangs up while queued is dropped from the queue
        const result = await evaluate(opts.batcher, call, ClientGone.of(reply.raw))
        // written straight into a Buffer from the output arrays (src/tensor/json-writer.ts)
        return await reply.type('application/json; charset=utf-8').send(writeJson(result))
      } finally {
        // the kernel has run (or never will): the tensors' memory serves the next body
        releaseBody(request)
      }
    })
  }

  // documented for clients that choose the loss at run time; it meets only names not served,
  // and answers them 404 whatever the body (its validation errors are set aside)
  app.post('/loss/:name', { schema: lossByNameSchema, attachValidation: true }, async request => unknown((request.params as { name: string }).name))

  const catalog = { losses: opts.losses.map(catalogEntry) }
  app.get('/loss', {
    schema: {
      operationId: 'listLosses',
      summary: 'The catalog: every loss with its arguments, options, defaults and reference.',
      description: 'Every loss served, in the order of docs/losses.md, each with its tensor arguments (and which get gradients), the JSON Schema of its options with their defaults, its reductions, its ground-truth reference and a request body that works.',
      tags: ['catalog'],
      response: { 200: described(Catalog, 'Every loss served.') }
    }
  }, async () => catalog)
  app.get('/loss/:name', {
    schema: {
      operationId: 'getLoss',
      summary: 'One catalog entry.',
      description: 'The catalog entry of one loss: as in `GET /loss`.',
      tags: ['catalog'],
      params: Type.Object({ name: Type.String({ description: 'Loss name, e.g. cross_entropy.' }) }),
      response: { 200: described(CatalogEntry, 'The loss\'s catalog entry.'), 404: unknownLossResponse }
    }
  }, async request => {
    const name = (request.params as { name: string }).name
    const def = byName.get(name)
    return def === undefined ? unknown(name) : catalogEntry(def)
  })
}
