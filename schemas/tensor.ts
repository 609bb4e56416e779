import { Type, type Static } from '@sinclair/typebox'
import { StringEnum } from './enum'

/** A non-finite float, written as the protobuf JSON mapping does. */
export const NonFinite = StringEnum(['NaN', 'Infinity', '-Infinity'], {
  $id: 'NonFinite',
  description: 'A non-finite float, written as in the protobuf JSON mapping.'
})

/** Element types of typed tensors. */
export const TensorDType = StringEnum(['float32', 'float64', 'int32', 'int64'], {
  $id: 'TensorDType',
  description: 'Element type. Nested arrays are float32 for float arguments and int64 for class indices.'
})

/** A tensor as nested arrays; a bare number is a 0-d tensor. */
export const NestedTensor = Type.Recursive(Self => Type.Union([Type.Number(), Type.Ref(NonFinite), Type.Array(Self)]), {
  $id: 'NestedTensor',
  title: 'NestedTensor',
  description: 'Nested arrays of numbers, row-major; a bare number is a 0-d tensor.',
  examples: [[[0.1, 2.0], [1.5, -3]]]
})

/** A typed tensor: flat row-major data, or base64 of its little-endian bytes. */
export const TypedTensor = Type.Object({
  dtype: Type.Ref(TensorDType),
  shape: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 8, description: 'Dimensions; [] for a 0-d tensor.' }),
  data: Type.Union([
    Type.Array(Type.Union([Type.Number(), Type.Ref(NonFinite)]), { description: 'Row-major elements.' }),
    Type.String({ description: 'Base64 of the little-endian bytes: 4 per float32/int32 element, 8 per float64/int64.' })
  ])
}, {
  $id: 'TypedTensor',
  additionalProperties: false,
  description: 'A typed tensor. `data` is flat row-major numbers, or a base64 string of the little-endian bytes (the fast path).',
  examples: [{ dtype: 'float32', shape: [2, 2], data: [0.1, 2.0, 1.5, -3] }]
})

/** Any of the three tensor forms. */
export const Tensor = Type.Union([Type.Ref(NestedTensor), Type.Ref(TypedTensor)], {
  $id: 'Tensor',
  description: 'A tensor: nested arrays, typed flat, or typed base64. Responses use the form of the request\'s first tensor argument.'
})

export type TensorJson = Static<typeof NestedTensor> | Static<typeof TypedTensor>
export type TypedTensorJson = Static<typeof TypedTensor>

/** Schemas that others reference by $id; registered once with Fastify. */
export const tensorSchemas = [NonFinite, TensorDType, NestedTensor, TypedTensor, Tensor]
