import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import YAML from 'yaml'
import { LOSSES } from '../src/losses'
import { build } from './helpers/app'

t.test('the committed openapi.yaml is what the server serves (run `npm run openapi` after a schema change)', async t => {
  const app = await build(t)
  const served = (await app.inject('/openapi.json')).json()
  const committed = YAML.parse(fs.readFileSync(path.join(__dirname, '..', 'openapi.yaml'), 'utf8'))
  t.same(committed, served)
})

t.test('every loss has its operation, request schema and error responses', async t => {
  const app = await build(t)
  const spec = (await app.inject('/openapi.json')).json()
  t.equal(spec.openapi, '3.0.3')
  for (const def of LOSSES) {
    const op = spec.paths[`/loss/${def.name}`]?.post
    t.ok(op?.operationId, `${def.name} has an operationId`)
    t.ok(op?.responses?.['400'], `${def.name} documents 400`)
    const body = op?.requestBody?.content?.['application/json']?.schema?.$ref as string
    const schema = spec.components.schemas[body.split('/').pop() as string]
    for (const a of def.args) t.ok(schema.properties[a.name], `${def.name} request has ${a.name}`)
    t.same(schema.properties.reduction.enum, def.reductions, `${def.name} reductions`)
  }
})

/** Keys whose value is data (an instance), not a schema or a part of the document. */
const VALUES = new Set(['example', 'examples', 'default', 'enum', 'const'])
/** Keys whose value maps names (which may be "example" or "default") to schemas. */
const NAMED = new Set(['properties', 'patternProperties'])

/** Calls `visit` on every object of the document that can be a schema, with its JSON pointer. */
function walk (node: unknown, where: string, visit: (o: Record<string, unknown>, where: string) => void): void {
  if (Array.isArray(node)) { node.forEach((n, i) => walk(n, `${where}/${i}`, visit)); return }
  if (typeof node !== 'object' || node === null) return
  const o = node as Record<string, unknown>
  visit(o, where)
  for (const [key, value] of Object.entries(o)) {
    const at = `${where}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`
    if (NAMED.has(key) && typeof value === 'object' && value !== null) {
      for (const [name, s] of Object.entries(value)) walk(s, `${at}/${name}`, visit)
    } else if (!VALUES.has(key)) walk(value, at, visit)
  }
}

t.test('the document is one that client generators in every language read alike', async t => {
  const app = await build(t)
  const spec = (await app.inject('/openapi.json')).json()

  t.test('every number and integer has a format (else float32, BigDecimal or a platform int)', async t => {
    const bare: string[] = []
    walk(spec, '#', (o, where) => {
      if ((o.type === 'number' || o.type === 'integer') && typeof o.format !== 'string') bare.push(where)
    })
    t.same(bare, [], 'numbers without a format')
  })

  t.test('no exclusive bound, which OpenAPI 3.0 and JSON Schema 2019-09 readers read differently', async t => {
    const exclusive: string[] = []
    walk(spec, '#', (o, where) => {
      if ('exclusiveMinimum' in o || 'exclusiveMaximum' in o) exclusive.push(where)
    })
    t.same(exclusive, [])
    // huber's delta (> 0): an inclusive bound with 0 itself excluded, read alike by both
    const delta = spec.components.schemas.HuberRequest.properties.delta
    t.match(delta, { type: 'number', format: 'double', minimum: 0, not: { enum: [0] }, default: 1 })
  })

  t.test('every operation declares the errors it can answer', async t => {
    const missing: string[] = []
    for (const [route, item] of Object.entries<Record<string, any>>(spec.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const expected = new Set<string>()
        // a body: malformed (400), too large (413), not JSON or compressed (415), and every
        // POST is shed while overloaded and refused while draining (503)
        if (op.requestBody !== undefined) for (const s of ['400', '413', '415', '503']) expected.add(s)
        // a path naming a resource (a loss, a model) that may not exist; every loss operation too
        if (route.includes('{') || (method === 'post' && route.startsWith('/loss/'))) expected.add('404')
        if (route === '/readyz') expected.add('503')
        for (const status of expected) if (op.responses?.[status] === undefined) missing.push(`${method.toUpperCase()} ${route}: ${status}`)
      }
    }
    t.same(missing, [], 'undeclared error responses')
  })

  t.test('a loss named at run time has a documented operation, whose 404 the server answers', async t => {
    const op = spec.paths['/loss/{name}']?.post
    t.equal(op?.operationId, 'evaluateLoss')
    t.ok(op?.responses?.['404'], '404 declared')
    t.ok(op?.responses?.['200'], '200 declared: served names are answered by their own routes')
    for (const payload of [{ input: [1], target: [1] }, [1, 2]]) {
      const r = await app.inject({ method: 'POST', url: '/loss/focal_loss_v9', payload })
      t.equal(r.statusCode, 404, `${JSON.stringify(payload)}: 404 whatever the body`)
      t.equal(r.json().code, 'UNKNOWN_LOSS')
    }
    const ok = await app.inject({ method: 'POST', url: '/loss/mse', payload: { input: [3], target: [1] } })
    t.same(ok.json(), { loss: 4 }, 'a served name reaches its loss: (3 - 1)^2')
  })

  t.test('a default server, described', async t => {
    t.equal(spec.servers?.[0]?.url, 'http://localhost:8080')
    for (const s of spec.servers) t.ok(s.description, `${s.url} described`)
  })

  t.test('the typed tensor forms are named components, each with an example', async t => {
    for (const name of ['NestedTensor', 'FlatTensor', 'Base64Tensor']) t.ok(spec.components.schemas[name]?.example, name)
    t.same(spec.components.schemas.TypedTensor.anyOf, [{ $ref: '#/components/schemas/FlatTensor' }, { $ref: '#/components/schemas/Base64Tensor' }])
    t.same(spec.components.schemas.NonFinite['x-enum-varnames'], ['NaN', 'Infinity', 'NegativeInfinity'])
  })

  t.test('the catalog and probe responses have examples', async t => {
    const example = (media: any): unknown => media?.example ?? media?.schema?.example ??
      (media?.schema?.$ref === undefined ? undefined : spec.components.schemas[media.schema.$ref.split('/').pop()].example)
    for (const [route, status] of [['/loss', 'ready'], ['/loss/{name}', 'ready'], ['/healthz', 'ok'], ['/readyz', 'ready']]) {
      const media = spec.paths[route].get.responses['200'].content['application/json']
      t.ok(example(media), `GET ${route}`)
      if (route.endsWith('z')) t.same(example(media), { status }, `GET ${route} as the probe answers`)
    }
  })
})

t.test('Swagger UI is served at /docs', async t => {
  const app = await build(t)
  const r = await app.inject('/docs/')
  t.equal(r.statusCode, 200)
  t.match(r.body, /swagger/i)
})
