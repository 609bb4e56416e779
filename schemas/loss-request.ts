import { Type, type TSchema, type TObject } from '@sinclair/typebox'
import { type LossDef } from '../src/losses/loss'
import { StringEnum } from './enum'
import { withFormats } from './number'
import { described, lossErrorResponses } from './responses'

/** PascalCase of a loss name, for component and operation names: cross_entropy → CrossEntropy. */
export function pascal (name: string): string {
  return name.split('_').map(w => w.charAt(0).toUpperCase() + w.slice(1)).join('')
}

/**
 * The request body of `POST /loss/<name>`: the loss's tensor arguments and options, and the
 * common `reduction`, `grad`, `grad_output`. Unknown fields are rejected.
 */
export function lossRequestSchema (def: LossDef): TObject {
  const props: Record<string, TSchema> = {}
  for (const a of def.args) {
    const t = Type.Ref('Tensor', { description: a.doc })
    props[a.name] = a.optional === true ? Type.Optional(t) : t
  }
  // an option with a default may be left out (validation fills it in); numbers get their
  // format here rather than in every loss's declaration
  for (const [k, declared] of Object.entries(def.options)) {
    const s = withFormats(declared)
    props[k] = 'default' in s ? Type.Optional(s) : s
  }
  props.reduction = Type.Optional(StringEnum(def.reductions, { default: 'mean', description: 'How the loss is reduced, as in PyTorch.' }))
  props.grad = Type.Optional(Type.Boolean({ default: false, description: 'Also return the gradient w.r.t. every differentiable argument.' }))
  props.grad_output = Type.Optional(Type.Ref('Tensor', { description: 'Upstream gradient, shaped like the returned loss (default ones).' }))
  return Type.Object(props, { $id: `${pascal(def.name)}Request`, additionalProperties: false, description: `Arguments and options of ${def.name}.`, examples: [def.example] })
}

/** The body of a successful `POST /loss/<name>`. */
export const LossResponse = Type.Object({
  loss: Type.Ref('Tensor', { description: 'A bare number (or 0-d typed tensor) when reduced; the reduction="none" shape otherwise.' }),
  grad: Type.Optional(Type.Record(Type.String(), Type.Ref('Tensor'), { description: 'Gradient per differentiable argument, each shaped like it; only with grad: true.' }))
}, {
  $id: 'LossResponse',
  examples: [{ loss: 0.5224, grad: { input: [[-0.2437, 0.2437], [0.0397, -0.0397], [0.0397, -0.0397]] } }]
})

/** The body of `POST /loss/{name}` for a name chosen at run time: the named loss's request. */
export const AnyLossRequest = Type.Object({
  reduction: Type.Optional(Type.String({ description: 'How the loss is reduced, as in PyTorch (default "mean"; which ones, the loss\'s operation and catalog entry say).' })),
  grad: Type.Optional(Type.Boolean({ description: 'Also return the gradient w.r.t. every differentiable argument (default false).' })),
  grad_output: Type.Optional(Type.Ref('Tensor', { description: 'Upstream gradient, shaped like the returned loss (default ones).' }))
}, {
  $id: 'AnyLossRequest',
  additionalProperties: true,
  description: 'The request of the loss named in the path: its tensor arguments and options (`GET /loss/{name}` lists them, and its own operation has the exact schema), and the common `reduction`, `grad`, `grad_output`.',
  examples: [{ input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1], grad: true }]
})

/**
 * The route schema of `POST /loss/{name}` for any name: served names are answered by their own
 * routes (concrete paths match first, in Fastify as in OpenAPI), so this one meets only names
 * that are not served. Documented for clients that choose the loss at run time.
 */
export const lossByNameSchema = {
  operationId: 'evaluateLoss',
  summary: 'Any loss, named in the path; 404 for a name not served.',
  description: 'The loss named in the path, on the body that loss takes: the same call as that loss\'s own operation (e.g. `evaluateCrossEntropy`), for clients that choose the loss at run time. ' +
    'A name that is not served gets 404 UNKNOWN_LOSS, whose message lists the losses served (as `GET /loss` does).',
  tags: ['by-name'],
  params: Type.Object({ name: Type.String({ description: 'Loss name, e.g. cross_entropy.', examples: ['cross_entropy'] }) }),
  body: Type.Ref(AnyLossRequest),
  response: { 200: described(LossResponse, 'The named loss, and its gradients when `grad` is true.'), ...lossErrorResponses }
}

/** A route's `config` part that lets the spec show its full body while validation skips decoded tensors. */
export interface DocumentedBody { documentedBody?: TSchema }

/**
 * `schema` with its tensor fields accepting anything: for routes whose tensors the body reader
 * decoded and checked already (src/http/json-body.ts). Required fields, unknown-field refusal
 * and the options' defaults stay as they are.
 */
export function withoutTensors (schema: TObject, tensorKeys: ReadonlySet<string>): TSchema {
  const properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, tensorKeys.has(k) ? {} : v]))
  const { $id: _id, examples: _examples, ...rest } = schema
  return { ...rest, properties } as unknown as TSchema
}
