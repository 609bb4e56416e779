import t from 'tap'
import { Kind, OptionalKind, Type } from '@sinclair/typebox'
import { Double, Int32, Int64, withFormats } from '../../schemas/number'

/** The JSON of a schema, without TypeBox's symbol keys. */
const plain = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema))

t.test('the number constructors carry their OpenAPI format', async t => {
  t.same(plain(Double({ minimum: 0 })), { type: 'number', format: 'double', minimum: 0 })
  t.same(plain(Int64()), { type: 'integer', format: 'int64' })
  t.same(plain(Int32({ minimum: 0 })), { type: 'integer', format: 'int32', minimum: 0 })
})

t.test('withFormats gives every number and integer a format, at any depth, on a copy', async t => {
  const declared = Type.Object({
    p: Type.Integer({ default: 1, minimum: 1 }),
    alpha: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.String()], { default: 'auto' }),
    sizes: Type.Array(Type.Integer()),
    kept: Type.Integer({ format: 'int32' }),
    default: Type.Number(), // a property named like a value keyword is a schema all the same
    ignore_index: Type.Optional(Type.Integer())
  }, { examples: [{ p: 1, sizes: [{ type: 'number' }] }] })
  const before = plain(declared)
  const out = withFormats(declared)
  t.same(plain(declared), before, 'the declaration is not changed')
  t.equal(out.properties.p.format, 'int64')
  t.same(out.properties.alpha.anyOf.map(s => (s as { format?: string }).format), ['double', undefined])
  t.equal(out.properties.sizes.items.format, 'int64')
  t.equal(out.properties.kept.format, 'int32', 'a declared format stays')
  t.equal(out.properties.default.format, 'double')
  t.same(out.examples, declared.examples, 'examples are values, left alone')
  // TypeBox's symbols survive: what numericKind and Type.Optional read
  t.equal(out.properties.p[Kind], 'Integer')
  t.equal(out.properties.alpha[Kind], 'Union')
  t.equal(out.properties.ignore_index[OptionalKind], 'Optional')
})
