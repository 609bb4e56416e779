/**
 * Every loss's catalog example through the Open Inference Protocol, in the JSON form and in
 * the binary form, answers what `POST /loss/{name}` answers for the same example.
 */
import t from 'tap'
import { LOSSES } from '../../../src/losses'
import { exampleBody } from '../../../src/routes/loss'
import { build, postLoss } from '../../helpers/app'
import { type Flat, fromForm, mismatch, tolerance } from '../../helpers/tensors'
import { inferBinary, inferJson, jsonInput, NO_SHEDDING, readResponse } from './v2'

/** A nested-array value as a typed flat tensor of `dtype`. */
function flatOf (nested: unknown, dtype: Flat['dtype']): Flat {
  const { shape, data } = fromForm(nested)
  return { dtype, shape, data }
}

/**
 * The example's tensors as V2 inputs and its other fields as parameters. Nested arrays carry no
 * dtype: float arguments are FP32, class indices INT64, and an argument that takes either is
 * probabilities when shaped like the first argument (the API's rule for nested arrays).
 */
function v2Example (name: string): { inputs: Array<{ name: string, t: Flat }>, parameters: Record<string, unknown> } {
  const def = LOSSES.find(d => d.name === name)!
  const body = def.example as Record<string, unknown>
  const first = fromForm(body[def.args[0].name]).shape
  const inputs: Array<{ name: string, t: Flat }> = []
  const parameters: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(body)) {
    const decl = def.args.find(a => a.name === k)
    if (decl === undefined) { parameters[k] = v; continue }
    const shape = fromForm(v).shape
    const index = decl.kind === 'index' || (decl.kind === 'float-or-index' && JSON.stringify(shape) !== JSON.stringify(first))
    inputs.push({ name: k, t: flatOf(v, index ? 'int64' : 'float32') })
  }
  return { inputs, parameters }
}

t.test('every catalog example: V2 JSON and V2 binary answer as POST /loss', async t => {
  const app = await build(t, NO_SHEDDING)
  const { rtol, atol } = tolerance('float32')
  for (const def of LOSSES) {
    const expected = await postLoss(app, def.name, exampleBody(def))
    t.equal(expected.status, 200, `${def.name}: /loss answers`)
    const loss = fromForm(expected.body.loss)
    const grads = Object.entries((expected.body.grad ?? {}) as Record<string, unknown>).map(([arg, g]) => [`grad_${arg}`, fromForm(g)] as const)
    const { inputs, parameters } = v2Example(def.name)

    const answers = {
      json: await inferJson(app, def.name, { id: `${def.name}-json`, parameters, inputs: inputs.map(i => jsonInput(i.name, i.t)) }),
      binary: await inferBinary(app, def.name, { id: `${def.name}-binary`, parameters: { ...parameters, binary_data_output: true }, inputs })
    }
    for (const [form, r] of Object.entries(answers)) {
      const label = `${def.name} [${form}]`
      if (r.statusCode !== 200) { t.fail(`${label}: status ${r.statusCode}: ${r.body}`); continue }
      const { json, outputs } = readResponse(r)
      t.equal(json.id, `${def.name}-${form}`, `${label}: id echoed`)
      t.equal(json.model_name, def.name)
      t.same([...outputs.keys()], ['loss', ...grads.map(([n]) => n)], `${label}: outputs loss and the gradients /loss returns`)
      t.same(outputs.get('loss')?.shape, loss.shape, `${label}: loss shape`)
      t.equal(outputs.get('loss')?.binary, form === 'binary', `${label}: loss as ${form}`)
      t.equal(mismatch(outputs.get('loss')?.data ?? [], loss.data, rtol, atol), undefined, `${label}: loss value`)
      for (const [name, g] of grads) {
        t.same(outputs.get(name)?.shape, g.shape, `${label}: ${name} shape`)
        t.equal(mismatch(outputs.get(name)?.data ?? [], g.data, rtol, atol), undefined, `${label}: ${name}`)
      }
    }
  }
})
