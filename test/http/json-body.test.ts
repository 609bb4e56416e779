import t from 'tap'
import { build } from '../helpers/app'
import { parseJsonBody } from '../../src/http/json-body'
import { MAX_JSON_DEPTH } from '../../src/tensor/json-reader'
import { LosshubError } from '../../src/errors'

const code = (text: string): string | undefined => {
  try { parseJsonBody(Buffer.from(text)) } catch (err) { return err instanceof LosshubError ? err.code : 'other' }
  return undefined
}

t.test('bodies nested past the bound are refused before any recursion', async t => {
  const nest = (n: number): string => '{"a":' + '['.repeat(n - 1) + ']'.repeat(n - 1) + '}'
  t.equal(code(nest(MAX_JSON_DEPTH)), undefined)
  t.equal(code(nest(MAX_JSON_DEPTH + 1)), 'INVALID_JSON')
  t.equal(code('{"a":' + '{"b":'.repeat(MAX_JSON_DEPTH) + '1' + '}'.repeat(MAX_JSON_DEPTH + 1)), 'INVALID_JSON')
  t.equal(code(''), 'INVALID_JSON')
  t.equal(code('{"a":'), 'INVALID_JSON')
  t.equal(code('{"__proto__": {"x": 1}}'), 'INVALID_REQUEST')
})

t.test('deep and wrapped tensors get 400 INVALID_JSON over HTTP', async t => {
  const app = await build(t)
  for (const [depth, inner] of [[100000, ''], [10000, '1']] as const) {
    const payload = '{"input":' + '['.repeat(depth) + inner + ']'.repeat(depth) + ',"target":1}'
    const r = await app.inject({ method: 'POST', url: '/loss/mse', headers: { 'content-type': 'application/json' }, payload })
    t.equal(r.statusCode, 400)
    t.same(r.json().code, 'INVALID_JSON')
    t.match(r.json().message, /nested deeper than 32 levels/)
  }
  const bad = await app.inject({ method: 'POST', url: '/loss/mse', headers: { 'content-type': 'application/json' }, payload: '{"input": [1,' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'INVALID_JSON')
  const ok = await app.inject({ method: 'POST', url: '/loss/mse', payload: { input: [[[[[[[[1]]]]]]]], target: 0 } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().loss, 1)
})
