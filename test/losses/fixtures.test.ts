import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { LOSSES } from '../../src/losses'
import { build, postLoss } from '../helpers/app'
import { type Flat, type Form, fromForm, mismatch, toForm, tolerance } from '../helpers/tensors'

/**
 * Every PyTorch fixture (scripts/fixtures/, values and autograd gradients) through the HTTP
 * API in each tensor form: nested arrays (float32 cases: nested arrays carry no dtype),
 * typed flat and typed base64.
 */
interface Case { name: string, args: Record<string, Flat>, options: Record<string, unknown>, grad_output?: Flat, expected: { loss: Flat, grad?: Record<string, Flat> } }

const dir = path.join(__dirname, '..', 'fixtures')
const served = new Set(LOSSES.map(d => d.name))

t.test('every served loss has fixtures', async t => {
  for (const name of served) t.ok(fs.existsSync(path.join(dir, `${name}.json`)), `${name}.json exists`)
})

for (const name of served) {
  const file = path.join(dir, `${name}.json`)
  if (!fs.existsSync(file)) continue
  const cases = (JSON.parse(fs.readFileSync(file, 'utf8')) as { cases: Case[] }).cases
  t.test(`${name}: ${cases.length} PyTorch fixtures`, async t => {
    const app = await build(t)
    for (const c of cases) {
      const dtype = Object.values(c.args).some(a => a.dtype === 'float64') ? 'float64' : 'float32'
      const forms: Form[] = dtype === 'float64' ? ['flat', 'base64'] : ['nested', 'flat', 'base64']
      const { rtol, atol } = tolerance(dtype)
      for (const form of forms) {
        const body: Record<string, unknown> = { ...c.options, grad: c.expected.grad !== undefined }
        for (const [k, v] of Object.entries(c.args)) body[k] = toForm(v, form)
        if (c.grad_output !== undefined) body.grad_output = toForm(c.grad_output, form)
        const res = await postLoss(app, name, body)
        const label = `${c.name} [${form}]`
        if (res.status !== 200) {
          t.fail(`${label}: status ${res.status}: ${JSON.stringify(res.body)}`)
          continue
        }
        const loss = fromForm(res.body.loss)
        t.same(loss.shape, c.expected.loss.shape, `${label}: loss shape`)
        const bad = mismatch(loss.data, fromForm(c.expected.loss).data, rtol, atol)
        t.equal(bad, undefined, `${label}: loss value`)
        for (const [arg, g] of Object.entries(c.expected.grad ?? {})) {
          const got = fromForm(res.body.grad?.[arg])
          t.same(got.shape, g.shape, `${label}: grad ${arg} shape`)
          t.equal(mismatch(got.data, fromForm(g).data, rtol, atol), undefined, `${label}: grad ${arg}`)
        }
      }
    }
  })
}
