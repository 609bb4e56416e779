import t from 'tap'
import { LOSSES } from '../../src/losses'
import { build, postLoss } from '../helpers/app'
import { fromForm, mismatch } from '../helpers/tensors'

// A deterministic generator, so a failure can be replayed.
let seed = 12345
const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]
const matrix = (n: number, d: number, f: () => number): number[][] => Array.from({ length: n }, () => Array.from({ length: d }, f))
const normal = (): number => Math.round((rand() * 4 - 2) * 1000) / 1000
const prob = (): number => Math.round((0.05 + rand() * 0.9) * 1000) / 1000

/** A target that broadcasts to [n, c]: [n,c] itself, [n,1], [1,c] or [c] (only the first two keep rows apart). */
const broadcastable = (n: number, c: number, f: () => number): unknown =>
  pick([() => matrix(n, c, f), () => matrix(n, c, f), () => matrix(n, 1, f), () => matrix(1, c, f), () => Array.from({ length: c }, f)])()

/** What a request generator is given: rows, classes, random class indices and the common fields. */
interface Draw { n: number, c: number, targets: number[], common: { reduction: string, grad: boolean } }

/** A random body of one loss; `perSample` when its unreduced loss has one value per row (else one per element). */
interface Generator { perSample?: boolean, body: (d: Draw) => Record<string, unknown> }

const elementwise: Generator = { body: ({ n, c, common }) => ({ ...common, input: matrix(n, c, normal), target: broadcastable(n, c, normal) }) }
const signs: Generator = { body: ({ n, c, common }) => ({ ...common, input: matrix(n, c, normal), target: matrix(n, c, () => pick([-1, 1])) }) }

/** Random requests of each batchable loss: shapes, options and reductions that vary. */
const GENERATORS: Record<string, Generator> = {
  mse: elementwise,
  l1: elementwise,
  log_cosh: elementwise,
  smooth_l1: { body: ({ n, c, common }) => ({ ...common, input: matrix(n, c, normal), target: matrix(n, c, normal), beta: pick([1, 0.5, 0.25, 0]) }) },
  huber: { body: ({ n, c, common }) => ({ ...common, input: matrix(n, c, normal), target: matrix(n, c, normal), delta: pick([1, 2, 0.3]) }) },
  cross_entropy: {
    perSample: true,
    body: ({ n, c, targets, common }) => ({
      ...common,
      input: matrix(n, c, normal),
      target: targets,
      ...(rand() < 0.3 ? { weight: [1, 2, 0.5, 1].slice(0, c) } : {}),
      ...(rand() < 0.4 ? { ignore_index: pick([1, 2]) } : {}),
      ...(rand() < 0.4 ? { label_smoothing: pick([0.1, 0.25]) } : {})
    })
  },
  nll: {
    perSample: true,
    body: ({ n, c, targets, common }) => ({
      ...common,
      input: matrix(n, c, () => -prob()),
      target: targets,
      ...(rand() < 0.4 ? { ignore_index: pick([0, 2]) } : {})
    })
  },
  bce: { body: ({ n, c, common }) => ({ ...common, input: matrix(n, c, prob), target: matrix(n, c, () => pick([0, 1])) }) },
  bce_with_logits: {
    body: ({ n, c, common }) => ({
      ...common,
      input: matrix(n, c, normal),
      target: matrix(n, c, prob),
      ...(rand() < 0.4 ? { pos_weight: [2, 1, 3, 1].slice(0, c) } : {})
    })
  },
  kl_div: { body: ({ n, c, common }) => ({ ...common, reduction: pick(['none', 'mean', 'sum', 'batchmean']), input: matrix(n, c, () => -prob()), target: matrix(n, c, prob) }) },
  poisson_nll: {
    body: ({ n, c, common }) => ({
      ...common,
      input: matrix(n, c, normal),
      target: matrix(n, c, () => Math.floor(rand() * 4)),
      full: rand() < 0.5,
      eps: pick([1e-8, 0.1])
    })
  },
  gaussian_nll: {
    body: ({ n, c, common }) => ({
      ...common,
      input: matrix(n, c, normal),
      target: broadcastable(n, c, normal),
      var: pick([() => matrix(n, c, prob), () => Array.from({ length: n }, prob), () => matrix(n, 1, prob)])()
    })
  },
  sigmoid_focal: {
    body: ({ n, c, common }) => ({
      ...common,
      input: matrix(n, c, normal),
      target: matrix(n, c, () => pick([0, 1])),
      gamma: pick([2, 1.5, 0]),
      alpha: pick([0.25, -1, 0.6])
    })
  },
  soft_margin: signs,
  hinge: signs,
  squared_hinge: signs,
  perceptron: signs,
  margin_ranking: {
    body: ({ n, c, common }) => ({
      ...common,
      input1: matrix(n, c, normal),
      input2: matrix(n, c, normal),
      target: matrix(n, c, () => pick([-1, 1])),
      margin: pick([0, 0.5])
    })
  },
  hinge_embedding: { body: ({ n, c, common }) => ({ ...common, input: matrix(n, c, normal), target: matrix(n, c, () => pick([-1, 1])), margin: pick([1, 0.5, 2]) }) },
  cosine_embedding: {
    perSample: true,
    body: ({ n, c, common }) => ({
      ...common,
      input1: matrix(n, c, normal),
      input2: matrix(n, c, normal),
      target: Array.from({ length: n }, () => pick([-1, 1]))
    })
  },
  cosine_similarity: {
    perSample: true,
    body: ({ n, c, common }) => ({
      ...common,
      input1: matrix(n, c, normal),
      input2: matrix(n, c, normal),
      target: Array.from({ length: n }, () => pick([-1, 0.5, 1]))
    })
  }
}

/** The losses that batch, as the registry declares them. */
const BATCHABLE = LOSSES.filter(d => d.batch !== undefined).map(d => d.name)

/** A random request of a batchable loss (of those with a generator: the test below requires them all). */
function randomRequest (): [string, Generator, Record<string, unknown>] {
  const n = 1 + Math.floor(rand() * 5)
  const c = pick([3, 4])
  const common = { reduction: pick(['none', 'mean', 'sum']), grad: rand() < 0.6 }
  const name = pick(BATCHABLE.filter(l => GENERATORS[l] !== undefined))
  const targets = Array.from({ length: n }, () => Math.floor(rand() * c))
  return [name, GENERATORS[name], GENERATORS[name].body({ n, c, targets, common })]
}

t.test('every batchable loss of the registry has a request generator here', async t => {
  t.same(BATCHABLE.filter(l => GENERATORS[l] === undefined), [], 'add one to GENERATORS')
  t.same(Object.keys(GENERATORS).filter(l => !BATCHABLE.includes(l)), [], 'a generator of a loss that does not batch (or no longer exists)')
})

t.test('300 concurrent mixed requests: each batched answer equals its solo answer', async t => {
  // no load shedding nor deadlines: on a busy machine they would answer 503/504 to one app only
  const steady = { maxEventLoopDelayMs: 0, requestTimeoutMs: 0 }
  const batched = await build(t, { ...steady, kernelWorkers: 1, batchMaxSize: 64 })
  const solo = await build(t, { ...steady, kernelWorkers: 0, batchMaxSize: 1 })
  const requests = Array.from({ length: 300 }, randomRequest).map(([name, generator, body]) => {
    if (body.grad === true && body.reduction === 'none') {
      const rows = (body.input ?? body.input1) as number[][]
      body.grad_output = generator.perSample === true ? rows.map(() => 0.5) : rows.map(r => r.map(() => 0.5))
    }
    return [name, body] as const
  })
  const answers = await Promise.all(requests.map(async ([name, body]) => await postLoss(batched, name, body)))
  const stats = batched.losshub.batcher.stats
  const multi = [...stats.sizes.entries()].filter(([size]) => size > 1).reduce((n, [, count]) => n + count, 0)
  t.ok(multi > 0, `some kernel runs held several requests (runs by size: ${JSON.stringify([...stats.sizes.entries()])})`)
  for (const [i, [name, body]] of requests.entries()) {
    const want = await postLoss(solo, name, body)
    const got = answers[i]
    t.equal(got.status, want.status, `#${i} ${name}: status`)
    if (want.status !== 200) continue
    const label = `#${i} ${name} ${String(body.reduction)}${body.grad === true ? ' grad' : ''}`
    t.same(fromForm(got.body.loss).shape, fromForm(want.body.loss).shape, `${label}: shape`)
    t.equal(mismatch(fromForm(got.body.loss).data, fromForm(want.body.loss).data, 1e-5, 1e-6), undefined, `${label}: loss`)
    for (const arg of Object.keys(want.body.grad ?? {})) {
      t.equal(mismatch(fromForm(got.body.grad[arg]).data, fromForm(want.body.grad[arg]).data, 1e-5, 1e-6), undefined, `${label}: grad ${arg}`)
    }
  }
})

/** Fires `bodies` at once at `app` (which waits up to 10 ms for a batch to fill). */
async function crowd (app: Awaited<ReturnType<typeof build>>, name: string, bodies: Array<Record<string, unknown>>): Promise<Array<{ shape: number[], data: number[] }>> {
  const answers = await Promise.all(bodies.map(async b => await postLoss(app, name, b)))
  return answers.map(a => fromForm(a.body.loss))
}

const largestRun = (app: Awaited<ReturnType<typeof build>>): number => Math.max(...app.losshub.batcher.stats.sizes.keys())

t.test('a target that broadcasts across the input is not mistaken for rows: each request gets its own answer', async t => {
  // gaussian_nll with input 0 and var 1 is 0.5 * target^2, elementwise
  const half = (v: number): number => 0.5 * v * v
  const batching = await build(t, { batchMaxSize: 64, batchMaxDelayUs: 10000, maxEventLoopDelayMs: 0, requestTimeoutMs: 0 })
  const targets = Array.from({ length: 16 }, (_, i) => [i, i + 0.5])

  // target [2] against input [2,1] broadcasts to [2,2]: every row holds both targets
  const crossed = await crowd(batching, 'gaussian_nll', targets.map(target => ({ input: [[0], [0]], target, var: [[1], [1]], reduction: 'none' })))
  crossed.forEach((got, i) => {
    t.same(got.shape, [2, 2], `#${i}: shape`)
    t.equal(mismatch(got.data, [...targets[i], ...targets[i]].map(half), 1e-6, 1e-6), undefined, `#${i}: values`)
  })

  // target [1,1] against input [1,1,1]: its axis 0 is the loss's axis 1
  const summed = await crowd(batching, 'gaussian_nll', targets.map(([a]) => ({ input: [[[0]]], target: [[a]], var: [[[1]]], reduction: 'sum' })))
  summed.forEach((got, i) => {
    t.same(got.shape, [], `#${i}: shape`)
    t.equal(mismatch(got.data, [half(targets[i][0])], 1e-6, 1e-6), undefined, `#${i}: the request's own sum`)
  })
  t.equal(largestRun(batching), 1, 'such requests run alone')

  // the same values with target [2,1], one per row: these do batch
  const rowwise = await crowd(batching, 'gaussian_nll', targets.map(([a, b]) => ({ input: [[0], [0]], target: [[a], [b]], var: [[1], [1]], reduction: 'none' })))
  rowwise.forEach((got, i) => {
    t.same(got.shape, [2, 1], `#${i}: shape`)
    t.equal(mismatch(got.data, targets[i].map(half), 1e-6, 1e-6), undefined, `#${i}: values`)
  })
  t.ok(largestRun(batching) > 1, 'rows that line up batch')
})
