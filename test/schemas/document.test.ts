import t from 'tap'
import { LOSSES } from '../../src/losses'
import { portableBounds, SERVERS, TAGS } from '../../schemas/document'

t.test('exclusive bounds become an inclusive bound with the bound value excluded', async t => {
  const doc = {
    components: {
      schemas: {
        A: { type: 'number', exclusiveMinimum: 0, default: 1 },
        B: { type: 'object', properties: { p: { type: 'number', exclusiveMaximum: 1, minimum: 0 } } },
        C: { anyOf: [{ type: 'number', minimum: 2, exclusiveMinimum: 1 }] },
        D: { type: 'number', minimum: 0 },
        E: { type: 'number', exclusiveMinimum: -1, exclusiveMaximum: 1 },
        F: { type: 'number', exclusiveMinimum: 0, not: { enum: [3] } },
        // a property named like a value keyword is still a schema; an example is a value
        G: { type: 'object', properties: { example: { type: 'number', exclusiveMinimum: 0 } }, example: { options: { exclusiveMinimum: 5 } } }
      }
    }
  }
  const out = portableBounds(structuredClone(doc)).components.schemas
  t.same(out.A, { type: 'number', minimum: 0, not: { enum: [0] }, default: 1 })
  t.same(out.B.properties.p, { type: 'number', maximum: 1, minimum: 0, not: { enum: [1] } })
  t.same(out.C.anyOf[0], { type: 'number', minimum: 2 }, 'minimum 2 is stricter than > 1')
  t.same(out.D, doc.components.schemas.D, 'inclusive bounds are left alone')
  t.same(out.E, { type: 'number', minimum: -1, maximum: 1, not: { enum: [-1, 1] } })
  t.same(out.F, { type: 'number', minimum: 0, not: { enum: [3] }, allOf: [{ not: { enum: [0] } }] }, 'an existing `not` is kept')
  t.same(out.G.properties.example, { type: 'number', minimum: 0, not: { enum: [0] } })
  t.same(out.G.example, doc.components.schemas.G.example, 'examples are data')
})

t.test('every tag a route uses has a description', async t => {
  const described = new Set(TAGS.filter(tag => tag.description.length > 0).map(tag => tag.name))
  for (const category of new Set(LOSSES.map(d => d.category))) t.ok(described.has(category), `tag ${category}`)
  for (const tag of ['by-name', 'catalog', 'operations']) t.ok(described.has(tag), `tag ${tag}`)
})

t.test('the first server is a local instance on the default port, described', async t => {
  t.equal(SERVERS[0].url, 'http://localhost:8080')
  for (const s of SERVERS) t.ok(s.description.length > 0, `${s.url} is described`)
})
