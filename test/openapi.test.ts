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

t.test('Swagger UI is served at /docs', async t => {
  const app = await build(t)
  const r = await app.inject('/docs/')
  t.equal(r.statusCode, 200)
  t.match(r.body, /swagger/i)
})
