import { Type, type Static } from '@sinclair/typebox'
import { CompositeRequest, CompositeTerm } from './composite'
import { TRITON_PARAMETERS } from './v2'

/**
 * The model `composite` of the Open Inference Protocol: `POST /losses` as one model. Its terms
 * travel in the request parameter `terms` (a JSON string: parameters are scalars), its tensors
 * as inputs, named as the terms bind them.
 */

/** The name of the model. */
export const V2_COMPOSITE_MODEL = 'composite'

/** The request parameters of model `composite`: `terms`, `grad` and Triton's; nothing else. */
export const V2CompositeParameters = Type.Object({
  terms: Type.String({ minLength: 1, description: 'The terms: a JSON array, as `terms` of `POST /losses`.' }),
  grad: Type.Optional(Type.Boolean({ description: 'Also return `grad_<input>` for every input a term differentiates. Absent: true when `outputs` asks for a `grad_` output.' })),
  ...TRITON_PARAMETERS
}, { additionalProperties: false })

/**
 * `parameters.terms` once parsed: the `terms` of `POST /losses` with the term's schema inlined
 * (no $ref), so that any validator compiles it on its own.
 */
export const V2CompositeTerms = Type.Array(Type.Object(CompositeTerm.properties, { additionalProperties: false }), {
  minItems: CompositeRequest.properties.terms.minItems,
  maxItems: CompositeRequest.properties.terms.maxItems
})

export type V2CompositeParametersJson = Static<typeof V2CompositeParameters>
export type V2CompositeTermsJson = Static<typeof V2CompositeTerms>
