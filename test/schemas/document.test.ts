import t from 'tap'
import { LOSSES } from '../../src/losses'
import { openapi30Bounds, TAGS } from '../../schemas/document'

t.test('numeric exclusive bounds become OpenAPI 3.0 boolean ones', async t => {
  const doc = {
    components: {
      schemas: {
        A: { type: 'number', exclusiveMinimum: 0, default: 1 },
        B: { type: 'object', properties: { p: { type: 'number', exclusiveMaximum: 1, minimum: 0 } } },
        C: { anyOf: [{ type: 'number', minimum: 2, exclusiveMinimum: 1 }] },
        D: { type: 'number', minimum: 0 }
      }
    }
  }
  const out = openapi30Bounds(structuredClone(doc))
  t.same(out.components.schemas.A, { type: 'number', minimum: 0, exclusiveMinimum: true, default: 1 })
  t.same(out.components.schemas.B.properties.p, { type: 'number', maximum: 1, exclusiveMaximum: true, minimum: 0 })
  t.same(out.components.schemas.C.anyOf[0], { type: 'number', minimum: 2 }, 'minimum 2 is stricter than > 1')
  t.same(out.components.schemas.D, doc.components.schemas.D, 'inclusive bounds are left alone')
})

t.test('every tag a route uses has a description', async t => {
  const described = new Set(TAGS.filter(tag => tag.description.length > 0).map(tag => tag.name))
  for (const category of new Set(LOSSES.map(d => d.category))) t.ok(described.has(category), `tag ${category}`)
  for (const tag of ['catalog', 'operations']) t.ok(described.has(tag), `tag ${tag}`)
})
