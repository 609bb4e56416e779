/**
 * The tensor schemas accept exactly what they accepted before the typed forms got names of their
 * own (FlatTensor, Base64Tensor) and numbers their formats, and fail with the same first error
 * (the one the API's message is made of): checked against the former schemas, kept here, on
 * hand-picked values and on random tensor-like values, with Ajv set up as src/app.ts sets it up.
 */
import t from 'tap'
import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import fc from 'fast-check'
import { Type } from '@sinclair/typebox'
import { ANNOTATIONS, StringEnum } from '../../schemas/enum'
import { Base64Tensor, FlatTensor, NonFinite, tensorSchemas, TypedTensor } from '../../schemas/tensor'

/** The schemas as they were, under other $ids. */
function formerSchemas (): unknown[] {
  const NonFiniteOld = StringEnum(['NaN', 'Infinity', '-Infinity'], { $id: 'OldNonFinite' })
  const DTypeOld = StringEnum(['float32', 'float64', 'int32', 'int64'], { $id: 'OldTensorDType' })
  const NestedOld = Type.Recursive(Self => Type.Union([Type.Number(), Type.Ref(NonFiniteOld), Type.Array(Self)]), { $id: 'OldNestedTensor' })
  const TypedOld = Type.Object({
    dtype: Type.Ref(DTypeOld),
    shape: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 8 }),
    data: Type.Union([Type.Array(Type.Union([Type.Number(), Type.Ref(NonFiniteOld)])), Type.String()])
  }, { $id: 'OldTypedTensor', additionalProperties: false })
  const TensorOld = Type.Union([Type.Ref(NestedOld), Type.Ref(TypedOld)], { $id: 'OldTensor' })
  return [NonFiniteOld, DTypeOld, NestedOld, TypedOld, TensorOld]
}

function validators (): { former: (v: unknown) => Verdict, current: (v: unknown) => Verdict } {
  const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, keywords: ANNOTATIONS })
  addFormats(ajv)
  for (const s of [...formerSchemas(), ...tensorSchemas]) ajv.addSchema(s as object)
  // as a request property, the way the loss request schemas refer to Tensor
  const wrap = (id: string) => {
    const validate = ajv.compile({ type: 'object', properties: { input: { $ref: id } } })
    return (input: unknown): Verdict => {
      const ok = validate({ input })
      const e = validate.errors?.[0]
      return ok ? { ok } : { ok, path: e?.instancePath, keyword: e?.keyword, message: e?.message }
    }
  }
  return { former: wrap('OldTensor'), current: wrap('Tensor') }
}

interface Verdict { ok: boolean, path?: string, keyword?: string, message?: string }

const { former, current } = validators()

const element = fc.oneof(fc.double(), fc.integer(), fc.constantFrom('NaN', 'Infinity', '-Infinity', 'inf', ''), fc.boolean(), fc.constant(null))
const nested = fc.letrec(tie => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, element, fc.array(tie('value'), { maxLength: 4 }))
})).value
// near-valid typed tensors (most accepted), and chaotic ones (most refused, at every key)
const wellTyped = fc.record({
  dtype: fc.constantFrom('float32', 'float64', 'int32', 'int64'),
  shape: fc.array(fc.nat(4), { maxLength: 9 }),
  data: fc.oneof(fc.array(fc.oneof(fc.double(), fc.constantFrom('NaN', 'Infinity', '-Infinity')), { maxLength: 6 }), fc.base64String(), fc.array(element, { maxLength: 3 }))
})
const typed = fc.record({
  dtype: fc.constantFrom('float32', 'float64', 'int32', 'int64', 'int8', 1),
  shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 10 }), fc.array(fc.double(), { maxLength: 2 }), fc.constant('2,2')),
  data: fc.oneof(fc.array(element, { maxLength: 6 }), fc.base64String(), fc.double(), fc.array(fc.array(fc.double()), { maxLength: 2 })),
  extra: fc.anything()
}, { requiredKeys: [] })
const value = fc.oneof(nested, wellTyped, typed, fc.anything())

t.test('hand-picked values: the same verdicts and first errors as before', async t => {
  const cases: unknown[] = [
    1.5, -3, 'NaN', 'Infinity', '-Infinity', 'nan', [], [[0.1, 2], [1.5, -3]], [[1, 'NaN'], ['Infinity', 2]], [[1, 2], [3]], [1, [2]], null, true, {},
    { dtype: 'float32', shape: [2, 2], data: [0.1, 2, 1.5, -3] },
    { dtype: 'float64', shape: [], data: ['NaN'] },
    { dtype: 'int64', shape: [3], data: 'AAAA' },
    { dtype: 'float32', shape: [2], data: [1, 2], extra: 1 },
    { dtype: 'float16', shape: [2], data: [1, 2] },
    { dtype: 'float32', shape: [-1], data: [] },
    { dtype: 'float32', shape: [1.5], data: [] },
    { dtype: 'float32', shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], data: [1] },
    { dtype: 'float32', shape: [1], data: 1 },
    { dtype: 'float32', shape: [1], data: [[1]] },
    { dtype: 'float32', shape: [1], data: [true] },
    { dtype: 'float32', shape: [1] },
    { shape: [1], data: [1] },
    { dtype: 'float32', data: 'AAAA' }
  ]
  for (const c of cases) t.same(current(c), former(c), JSON.stringify(c))
})

t.test('random tensor-like values: the same verdicts and first errors as before', async t => {
  fc.assert(fc.property(value, v => {
    const [a, b] = [current(v), former(v)]
    if (a.ok !== b.ok || a.path !== b.path || a.keyword !== b.keyword || a.message !== b.message) throw new Error(`${JSON.stringify(v)}: now ${JSON.stringify(a)}, before ${JSON.stringify(b)}`)
  }), { numRuns: 3000, seed: 20261126 })
  t.pass('3000 values')
})

t.test('the typed forms are named, and the non-finite constants get names that survive losing the sign', async t => {
  t.equal(FlatTensor.$id, 'FlatTensor')
  t.equal(Base64Tensor.$id, 'Base64Tensor')
  t.same(TypedTensor.anyOf.map(s => (s as { $ref?: string }).$ref), ['FlatTensor', 'Base64Tensor'])
  const names = NonFinite['x-enum-varnames'] as string[]
  t.same(names, ['NaN', 'Infinity', 'NegativeInfinity'])
  t.same(NonFinite['x-enumNames'], names)
  // a generator that keeps letters and digits only must still tell them apart
  const stripped = names.map(n => n.replace(/[^A-Za-z0-9]/g, '').toUpperCase())
  t.equal(new Set(stripped).size, names.length)
})
