import { Type, type TSchema, type TObject } from '@sinclair/typebox'
import { type LossDef } from '../src/losses/loss'
import { StringEnum } from './enum'

/** PascalCase of a loss name, for component and operation names: cross_entropy → CrossEntropy. */
export function pascal (name: string): string {
  return name.split('_').map(w => w.charAt(0).toUpperCase() + w.slice(1)).join('')
}

export { StringEnum } from './enum'

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
  // an option with a default may be left out (validation fills it in)
  for (const [k, s] of Object.entries(def.options)) props[k] = 'default' in s ? Type.Optional(s) : s
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
