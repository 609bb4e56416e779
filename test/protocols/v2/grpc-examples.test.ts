/**
 * Every loss's catalog example through the Open Inference Protocol over gRPC, with typed
 * contents and with raw_input_contents, answers what `POST /loss/{name}` answers for the same
 * example.
 */
import t from 'tap'
import { LOSSES } from '../../../src/losses'
import { exampleBody } from '../../../src/routes/loss'
import { postLoss } from '../../helpers/app'
import { type Flat, fromForm, mismatch, tolerance } from '../../helpers/tensors'
import { grpcApp, outputsOf, params, rawInputs, typedInput } from './grpc'
import { NO_SHEDDING } from './v2'

/**
 * The example's tensors as inputs and its other fields as parameters. Nested arrays carry no
 * dtype: float arguments are FP32, class indices INT64, and an argument that takes either is
 * probabilities when shaped like the first argument (the API's rule for nested arrays).
 */
function grpcExample (name: string): { inputs: Array<{ name: string, t: Flat }>, parameters: Record<string, boolean | number | string> } {
  const def = LOSSES.find(d => d.name === name)!
  const body = def.example as Record<string, unknown>
  const first = fromForm(body[def.args[0].name]).shape
  const inputs: Array<{ name: string, t: Flat }> = []
  const parameters: Record<string, boolean | number | string> = {}
  for (const [k, v] of Object.entries(body)) {
    const decl = def.args.find(a => a.name === k)
    if (decl === undefined) { parameters[k] = v as boolean | number | string; continue }
    const { shape, data } = fromForm(v)
    const index = decl.kind === 'index' || (decl.kind === 'float-or-index' && JSON.stringify(shape) !== JSON.stringify(first))
    inputs.push({ name: k, t: { dtype: index ? 'int64' : 'float32', shape, data } })
  }
  return { inputs, parameters }
}

t.test('every catalog example: gRPC typed and raw answer as POST /loss', async t => {
  const s = await grpcApp(t, NO_SHEDDING)
  const { rtol, atol } = tolerance('float32')
  for (const def of LOSSES) {
    const expected = await postLoss(s.app, def.name, exampleBody(def))
    t.equal(expected.status, 200, `${def.name}: /loss answers`)
    const loss = fromForm(expected.body.loss)
    const grads = Object.entries((expected.body.grad ?? {}) as Record<string, unknown>).map(([arg, g]) => [`grad_${arg}`, fromForm(g)] as const)
    const { inputs, parameters } = grpcExample(def.name)
    // a float option that happens to be whole travels as int64_param: the loss's schema takes it as a number
    const answers = {
      typed: await s.call('ModelInfer', { model_name: def.name, id: `${def.name}-typed`, parameters: params(parameters), inputs: inputs.map(i => typedInput(i.name, i.t)) }),
      raw: await s.call('ModelInfer', { model_name: def.name, id: `${def.name}-raw`, parameters: params(parameters), ...rawInputs(inputs) })
    }
    for (const [form, r] of Object.entries(answers)) {
      const label = `${def.name} [${form}]`
      if (!r.ok) { t.fail(`${label}: ${r.error.details}`); continue }
      t.equal(r.value.id, `${def.name}-${form}`, `${label}: id echoed`)
      t.equal(r.value.model_name, def.name)
      const outputs = outputsOf(r.value)
      t.same([...outputs.keys()], ['loss', ...grads.map(([n]) => n)], `${label}: outputs loss and the gradients /loss returns`)
      t.same(outputs.get('loss')?.shape, loss.shape, `${label}: loss shape`)
      t.equal(outputs.get('loss')?.raw, form === 'raw', `${label}: loss ${form}`)
      t.equal(mismatch(outputs.get('loss')?.data ?? [], loss.data, rtol, atol), undefined, `${label}: loss value`)
      for (const [name, g] of grads) {
        t.same(outputs.get(name)?.shape, g.shape, `${label}: ${name} shape`)
        t.equal(mismatch(outputs.get(name)?.data ?? [], g.data, rtol, atol), undefined, `${label}: ${name}`)
      }
    }
  }
})
