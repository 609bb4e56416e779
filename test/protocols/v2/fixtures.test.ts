/**
 * The PyTorch fixtures (test/fixtures/, values and autograd gradients) through the Open
 * Inference Protocol's binary form: every case of every loss with its tensors as raw bytes
 * and its outputs returned as raw bytes; the first case with class indices also as INT32.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { LOSSES } from '../../../src/losses'
import { build } from '../../helpers/app'
import { type Flat, fromForm, mismatch, tolerance } from '../../helpers/tensors'
import { DATATYPE, inferBinary, NO_SHEDDING, readResponse } from './v2'

interface Case { name: string, args: Record<string, Flat>, options: Record<string, unknown>, grad_output?: Flat, expected: { loss: Flat, grad?: Record<string, Flat> } }

const dir = path.join(__dirname, '..', '..', 'fixtures')
const sent = new Set<string>()

for (const def of LOSSES) {
  const file = path.join(dir, `${def.name}.json`)
  if (!fs.existsSync(file)) continue
  const cases = (JSON.parse(fs.readFileSync(file, 'utf8')) as { cases: Case[] }).cases
  t.test(`${def.name}: ${cases.length} PyTorch fixtures through V2 binary`, async t => {
    const app = await build(t, NO_SHEDDING, { losses: [def] })
    const withIndices = cases.find(c => Object.values(c.args).some(a => a.dtype === 'int64'))
    const runs: Array<[Case, string, Record<string, Flat>]> = cases.map(c => [c, c.name, c.args])
    if (withIndices !== undefined) {
      const as32 = Object.fromEntries(Object.entries(withIndices.args).map(([k, a]) => [k, a.dtype === 'int64' ? { ...a, dtype: 'int32' as const } : a]))
      runs.push([withIndices, `${withIndices.name} (indices as INT32)`, as32])
    }
    for (const [c, label, args] of runs) {
      const dtype = Object.values(args).some(a => a.dtype === 'float64') ? 'float64' : 'float32'
      const { rtol, atol } = tolerance(dtype)
      const inputs = Object.entries(args).map(([name, a]) => ({ name, t: a }))
      if (c.grad_output !== undefined) inputs.push({ name: 'grad_output', t: c.grad_output })
      for (const i of inputs) sent.add(DATATYPE[i.t.dtype])
      const r = await inferBinary(app, def.name, { parameters: { ...c.options, grad: c.expected.grad !== undefined, binary_data_output: true }, inputs })
      if (r.statusCode !== 200) { t.fail(`${label}: status ${r.statusCode}: ${r.body}`); continue }
      const out = readResponse(r).outputs
      const loss = out.get('loss')!
      t.ok(loss.binary, `${label}: binary loss`)
      t.equal(loss.datatype, DATATYPE[dtype], `${label}: loss datatype`)
      t.same(loss.shape, c.expected.loss.shape, `${label}: loss shape`)
      t.equal(mismatch(loss.data, fromForm(c.expected.loss).data, rtol, atol), undefined, `${label}: loss value`)
      for (const [arg, g] of Object.entries(c.expected.grad ?? {})) {
        const got = out.get(`grad_${arg}`)
        t.same(got?.shape, g.shape, `${label}: grad ${arg} shape`)
        t.equal(mismatch(got?.data ?? [], fromForm(g).data, rtol, atol), undefined, `${label}: grad ${arg}`)
      }
    }
  })
}

t.test('every datatype was sent', async t => {
  t.same([...sent].sort(), ['FP32', 'FP64', 'INT32', 'INT64'])
})
