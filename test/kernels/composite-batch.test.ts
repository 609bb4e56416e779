import t, { type Test } from 'tap'
import { type FastifyInstance } from 'fastify'
import { batchPlan } from '../../src/kernels/batch'
import { type CompositeBody, prepareComposite } from '../../src/kernels/composite'
import { REGISTRY } from '../../src/losses'
import { build } from '../helpers/app'
import { fromForm, mismatch } from '../helpers/tensors'

/** Composites with the same structure batch together, and each member's answer is its solo answer. */

let seed = 5
const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
const matrix = (rows: number, cols: number): number[][] => Array.from({ length: rows }, () => Array.from({ length: cols }, () => Math.round((rand() * 4 - 2) * 1e3) / 1e3))

/** mse + l1 + smooth_l1 over one pair, weighted `w`. */
function regression (rows: number, w = [0.5, 0.3, 0.2]): CompositeBody {
  return {
    tensors: { pred: matrix(rows, 4), target: matrix(rows, 4) },
    terms: [
      { loss: 'mse', weight: w[0], args: { input: 'pred', target: 'target' } },
      { loss: 'l1', weight: w[1], args: { input: 'pred', target: 'target' } },
      { loss: 'smooth_l1', weight: w[2], args: { input: 'pred', target: 'target' }, options: { beta: 0.5 } }
    ],
    grad: true
  }
}

/** cross_entropy on class indices + bce_with_logits on their one-hot, sharing the logits (targets of another rank). */
function classification (rows: number): CompositeBody {
  const labels = Array.from({ length: rows }, () => Math.floor(rand() * 3))
  return {
    tensors: { logits: matrix(rows, 3), labels, onehot: labels.map(l => [0, 1, 2].map(c => c === l ? 1 : 0)) },
    terms: [
      { loss: 'cross_entropy', args: { input: 'logits', target: 'labels' } },
      { loss: 'bce_with_logits', weight: 0.25, args: { input: 'logits', target: 'onehot' }, name: 'bce' }
    ],
    grad: true
  }
}

const env = {
  losses: REGISTRY,
  validateOptions: (def: { options: Record<string, unknown> }, options: Record<string, unknown>) => {
    const out: Record<string, unknown> = { reduction: 'mean', ...options }
    for (const [k, s] of Object.entries(def.options)) if (out[k] === undefined && 'default' in (s as object)) out[k] = (s as { default: unknown }).default
    return out
  }
}
const plan = (body: CompositeBody): ReturnType<typeof batchPlan> => batchPlan(prepareComposite(structuredClone(body), env as never).call)

t.test('the batch group: the same structure and weights batch; other weights, options or a term that cannot batch do not', async t => {
  const a = plan(regression(2))
  const b = plan(regression(5))
  t.ok(a !== undefined && b !== undefined, 'a composite of batchable terms batches')
  t.equal(a?.group, b?.group, 'any rows, the same group')
  t.equal(a?.rows, 2)
  t.not(plan(regression(2, [0.5, 0.3, 0.25]))?.group, a?.group, 'another weight: another group')
  const beta = regression(2)
  beta.terms[2].options = { beta: 1 }
  t.not(plan(beta)?.group, a?.group, 'another option value: another group')
  t.ok(plan(classification(3)) !== undefined, 'targets of another rank, lined up by their loss')
  const dice: CompositeBody = {
    tensors: { logits: [[[[1, -1]]], [[[0.5, 2]]]], mask: [[[[1, 0]]], [[[0, 1]]]] },
    terms: [{ loss: 'bce_with_logits', args: { input: 'logits', target: 'mask' } }, { loss: 'dice', args: { input: 'logits', target: 'mask' }, options: { mode: 'binary' } }]
  }
  t.equal(plan(dice), undefined, 'dice is one value over the whole batch: the composite runs alone')
  const none = regression(2)
  none.terms[0] = { ...none.terms[0], weight: 0, options: { reduction: 'none' } }
  t.equal(plan(none), undefined, 'a term with reduction "none" has rows of its own: alone')
})

async function post (app: FastifyInstance, body: unknown): Promise<any> {
  const r = await app.inject({ method: 'POST', url: '/losses', payload: body as object })
  if (r.statusCode !== 200) throw new Error(`${r.statusCode} ${r.body}`)
  return r.json()
}

function same (t: Test, got: any, want: any, label: string): void {
  t.equal(mismatch([Number(got.total)], [Number(want.total)], 1e-5, 1e-6), undefined, `${label}: total`)
  got.terms.forEach((term: any, i: number) => t.equal(mismatch([Number(term.value)], [Number(want.terms[i].value)], 1e-5, 1e-6), undefined, `${label}: term ${i}`))
  for (const name of Object.keys(want.grad)) t.equal(mismatch(fromForm(got.grad[name]).data, fromForm(want.grad[name]).data, 1e-5, 1e-6), undefined, `${label}: grad ${name}`)
  t.same(Object.keys(got.grad), Object.keys(want.grad))
}

t.test('requests sent at once share kernel runs, and each gets its solo answer', async t => {
  const app = await build(t)
  for (const [kind, make] of [['regression', (r: number) => regression(r)], ['classification', classification], ['mixed weights', (r: number) => regression(r, r % 2 === 0 ? [1, 0, 0] : [0.5, 0.3, 0.2])]] as const) {
    const bodies = [1, 2, 3, 4, 5, 6].map(make)
    const solo: any[] = []
    for (const b of bodies) solo.push(await post(app, b))
    const runs = app.losshub.batcher.stats.runs
    const together = await Promise.all(bodies.map(async b => await post(app, b)))
    const used = app.losshub.batcher.stats.runs - runs
    t.ok(used < bodies.length, `${kind}: ${bodies.length} requests in ${used} kernel runs`)
    together.forEach((got, i) => same(t, got, solo[i], `${kind} #${i}`))
  }
})

t.test('property: random composites of elementwise terms, sent at once, each get their solo answer', async t => {
  const fc = (await import('fast-check')).default
  const app = await build(t)
  const LOSSES = ['mse', 'l1', 'smooth_l1', 'huber', 'log_cosh', 'bce_with_logits'] as const
  const term = fc.record({
    loss: fc.constantFrom(...LOSSES),
    swap: fc.boolean(), // bind the pair the other way round (never for bce_with_logits, whose target is a probability)
    weight: fc.constantFrom(0, 0.5, 1, 2),
    reduction: fc.constantFrom('mean', 'sum')
  })
  const scenario = fc.record({
    terms: fc.array(term, { minLength: 1, maxLength: 4 }),
    trailing: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    grad: fc.boolean(),
    rows: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 5 })
  })
  let sent = 0
  let ran = 0
  await fc.assert(fc.asyncProperty(scenario, async s => {
    const make = (rows: number): CompositeBody => {
      const n = rows * s.trailing.reduce((a, b) => a * b, 1)
      const flat = (f: () => number): unknown => ({ dtype: 'float32', shape: [rows, ...s.trailing], data: Array.from({ length: n }, f) })
      return {
        tensors: { x: flat(() => Math.round((rand() * 4 - 2) * 1e3) / 1e3), p: flat(() => Math.round(rand() * 1e3) / 1e3) },
        terms: s.terms.map(({ loss, swap, weight, reduction }) => ({
          loss,
          weight,
          args: swap && loss !== 'bce_with_logits' ? { input: 'p', target: 'x' } : { input: 'x', target: 'p' },
          options: { reduction }
        })),
        grad: s.grad
      }
    }
    const bodies = s.rows.map(make)
    const solo = []
    for (const b of bodies) solo.push(await post(app, b))
    const runs = app.losshub.batcher.stats.runs
    const together = await Promise.all(bodies.map(async b => await post(app, b)))
    sent += bodies.length
    ran += app.losshub.batcher.stats.runs - runs
    for (const [i, got] of together.entries()) {
      const want = solo[i]
      const values = (r: any): number[] => [Number(r.total), ...r.terms.map((x: any) => Number(x.value))]
      if (mismatch(values(got), values(want), 1e-5, 1e-6) !== undefined) return false
      for (const name of Object.keys(want.grad ?? {})) if (mismatch(fromForm(got.grad[name]).data, fromForm(want.grad[name]).data, 1e-5, 1e-6) !== undefined) return false
    }
    return true
  }), { numRuns: Number(process.env.COMPOSITE_RUNS ?? 12), seed: 20261126 })
  t.pass('every member of every random batch equals its solo answer')
  t.ok(ran < sent, `and they did batch: ${sent} requests in ${ran} kernel runs`)
})
