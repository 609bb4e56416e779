import { Type, type Static } from '@sinclair/typebox'
import { StringEnum } from './enum'
import { Double, Int64 } from './number'

/** A non-finite float, written as the protobuf JSON mapping does. */
export const NonFinite = StringEnum(['NaN', 'Infinity', '-Infinity'], {
  $id: 'NonFinite',
  description: 'A non-finite float, written as in the protobuf JSON mapping.',
  // constant names for generators that would make "Infinity" and "-Infinity" one name
  // (openapi-generator, oapi-codegen: x-enum-varnames; NSwag: x-enumNames)
  'x-enum-varnames': ['NaN', 'Infinity', 'NegativeInfinity'],
  'x-enumNames': ['NaN', 'Infinity', 'NegativeInfinity']
})

/** Element types of typed tensors. */
export const TensorDType = StringEnum(['float32', 'float64', 'int32', 'int64'], {
  $id: 'TensorDType',
  description: 'Element type. Nested arrays are float32 for float arguments and int64 for class indices.'
})

/** One element: a float64 number, or a non-finite float as a string. */
const Element = () => Type.Union([Double(), Type.Ref(NonFinite)])

/** A tensor as nested arrays; a bare number is a 0-d tensor. */
export const NestedTensor = Type.Recursive(Self => Type.Union([Double(), Type.Ref(NonFinite), Type.Array(Self)]), {
  $id: 'NestedTensor',
  title: 'NestedTensor',
  description: 'Nested arrays of numbers, row-major; a bare number is a 0-d tensor.',
  examples: [[[0.1, 2.0], [1.5, -3]]]
})

/** The `dtype` and `shape` of both typed forms. */
const typedHeader = () => ({
  dtype: Type.Ref(TensorDType),
  shape: Type.Array(Int64({ minimum: 0 }), { maxItems: 8, description: 'Dimensions; [] for a 0-d tensor.' })
})

/** A typed tensor with its elements as a flat row-major array. */
export const FlatTensor = Type.Object({
  ...typedHeader(),
  data: Type.Array(Element(), { description: 'Row-major elements.' })
}, {
  $id: 'FlatTensor',
  additionalProperties: false,
  description: 'A typed tensor whose `data` is its elements, flat and row-major.',
  examples: [{ dtype: 'float32', shape: [2, 2], data: [0.1, 2.0, 1.5, -3] }]
})

/** A typed tensor with its elements as base64 of their little-endian bytes (the fast path). */
export const Base64Tensor = Type.Object({
  ...typedHeader(),
  data: Type.String({ description: 'Base64 of the little-endian bytes: 4 per float32/int32 element, 8 per float64/int64. RFC 4648 base64 with its `=` padding (the URL-safe `-` and `_` are read as `+` and `/`).' })
}, {
  $id: 'Base64Tensor',
  additionalProperties: false,
  description: 'A typed tensor whose `data` is base64 of its little-endian bytes, row-major: the fast path, with no per-number JSON parsing.',
  // float32 [0.1, 2.0, 1.5, -3]
  examples: [{ dtype: 'float32', shape: [2, 2], data: 'zczMPQAAAEAAAMA/AABAwA==' }]
})

/** A typed tensor: flat row-major data, or base64 of its little-endian bytes. */
export const TypedTensor = Type.Union([Type.Ref(FlatTensor), Type.Ref(Base64Tensor)], {
  $id: 'TypedTensor',
  description: 'A typed tensor: `data` is flat row-major numbers (FlatTensor), or a base64 string of the little-endian bytes (Base64Tensor, the fast path).'
})

/** Any of the three tensor forms. */
export const Tensor = Type.Union([Type.Ref(NestedTensor), Type.Ref(TypedTensor)], {
  $id: 'Tensor',
  description: 'A tensor: nested arrays, typed flat, or typed base64. Responses use the form of the request\'s first tensor argument.'
})

export type FlatTensorJson = Static<typeof FlatTensor>
export type Base64TensorJson = Static<typeof Base64Tensor>
export type TypedTensorJson = FlatTensorJson | Base64TensorJson
export type TensorJson = Static<typeof NestedTensor> | TypedTensorJson

/** Schemas that others reference by $id; registered once with Fastify. */
export const tensorSchemas = [NonFinite, TensorDType, NestedTensor, FlatTensor, Base64Tensor, TypedTensor, Tensor]
