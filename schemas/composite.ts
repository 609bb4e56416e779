import { Type, type TObject, type TSchema } from '@sinclair/typebox'
import { type LossDef } from '../src/losses/loss'
import { lossRequestSchema } from './loss-request'
import { Double } from './number'
import { NonFinite } from './tensor'

/** What a tensor name must look like: an identifier. */
export const TENSOR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Most terms one composite may have. */
export const MAX_TERMS = 16

/** One term of a composite: a loss, its arguments bound to tensors by name, its options and weight. */
export const CompositeTerm = Type.Object({
  loss: Type.String({ description: 'A loss of the catalog (`GET /loss`), e.g. `dice`.' }),
  weight: Type.Optional(Double({ default: 1, description: 'The term\'s weight in the total. A term of weight 0 is reported but left out of the total and of the gradient.' })),
  args: Type.Record(Type.String(), Type.String({ description: 'The name of an entry of `tensors`.' }), {
    description: 'Each tensor argument of the loss (`input`, `target`, `weight`, ...) bound to the name of an entry of `tensors`; one tensor may serve several arguments and terms.'
  }),
  options: Type.Optional(Type.Object({}, {
    additionalProperties: true,
    description: 'The loss\'s options and `reduction`, as in the body of `POST /loss/{name}` (defaults as there). With reduction `none` the term\'s weight must be 0.'
  })),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A label for the term, repeated in its result and in error messages.' }))
}, { $id: 'CompositeTerm', additionalProperties: false, description: 'One loss of a composite.' })

const example = {
  tensors: { logits: [[[[1.2, -0.5], [0.3, 2.0]]]], mask: [[[[1, 0], [0, 1]]]] },
  terms: [
    { loss: 'bce_with_logits', weight: 0.5, args: { input: 'logits', target: 'mask' } },
    { loss: 'dice', weight: 0.5, args: { input: 'logits', target: 'mask' }, options: { mode: 'binary' }, name: 'dice' }
  ],
  grad: true
}

/** The body of `POST /losses`. */
export const CompositeRequest = Type.Object({
  tensors: Type.Record(Type.String(), Type.Ref('Tensor'), {
    minProperties: 1,
    description: 'The tensors, by name (identifiers: `[A-Za-z_][A-Za-z0-9_]*`). Every one must be used by a term. The first one sets the form of the response\'s tensors; any float64 one makes the whole call float64.'
  }),
  terms: Type.Array(Type.Ref(CompositeTerm), { minItems: 1, maxItems: MAX_TERMS, description: `The losses, at most ${MAX_TERMS}.` }),
  grad: Type.Optional(Type.Boolean({ default: false, description: 'Also return the gradient of the total w.r.t. every tensor a term uses as a differentiable argument (summed over the terms).' }))
}, {
  $id: 'CompositeRequest',
  additionalProperties: false,
  description: 'Several losses over shared tensors: their values, their weighted total and its gradient.',
  examples: [example]
})

/**
 * What `POST /losses` validates: CompositeRequest with the values of `tensors` left to the body
 * reader, which decodes and checks them (src/tensor/json-reader.ts).
 */
export const CompositeRequestWithoutTensors: TSchema = (() => {
  const { $id: _id, examples: _examples, ...rest } = CompositeRequest
  const { description: _d, patternProperties: _p, ...tensors } = CompositeRequest.properties.tensors
  return { ...rest, properties: { ...CompositeRequest.properties, tensors: { ...tensors, additionalProperties: {} } } } as unknown as TSchema
})()

/** The body of a successful `POST /losses`. */
export const CompositeResponse = Type.Object({
  total: Type.Union([Double(), Type.Ref(NonFinite)], { description: 'The weighted sum of the terms\' values: a JSON number in every tensor form (a non-finite one as a string).' }),
  terms: Type.Array(Type.Object({
    loss: Type.String({ description: 'The term\'s loss.' }),
    name: Type.Optional(Type.String({ description: 'The term\'s name, when it has one.' })),
    value: Type.Ref('Tensor', { description: 'The term\'s value, unweighted: a JSON number (a non-finite one as a string) when reduced, a tensor in the form of the first tensor with reduction `none`.' })
  }, { additionalProperties: false }), { description: 'One result per term, in the request\'s order.' }),
  grad: Type.Optional(Type.Record(Type.String(), Type.Ref('Tensor'), { description: 'The gradient of the total per tensor used as a differentiable argument, shaped like it; only with grad: true.' }))
}, {
  $id: 'CompositeResponse',
  examples: [{
    total: 0.3564,
    terms: [{ loss: 'bce_with_logits', value: 0.4297 }, { loss: 'dice', name: 'dice', value: 0.2831 }],
    grad: { logits: [[[[-0.0537, 0.0655], [0.0908, -0.0295]]]] }
  }]
})

/** Schemas the composite route registers by $id. */
export const compositeSchemas: TSchema[] = [CompositeTerm, CompositeRequest, CompositeResponse]

const termOptions = new WeakMap<LossDef, TObject>()

/**
 * The schema of a term's `options` for `def`: the loss's options and `reduction`, exactly as in
 * its `POST /loss/{name}` body, and nothing else. One object per loss, so validators compiled
 * from it are cached.
 */
export function termOptionsSchema (def: LossDef): TObject {
  let schema = termOptions.get(def)
  if (schema === undefined) {
    const props = lossRequestSchema(def).properties
    const own = [...Object.keys(def.options), 'reduction']
    schema = Type.Object(Object.fromEntries(own.map(k => [k, props[k]])), { additionalProperties: false })
    termOptions.set(def, schema)
  }
  return schema
}
