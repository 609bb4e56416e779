import t from 'tap'
import { preparedKernels } from '../../src/batching/kernels'
import { buildFeeds } from '../../src/kernels/kernel'
import { prepare } from '../../src/kernels/prepare'
import mse from '../../src/losses/mse'

const call = (input: number[][], reduction = 'none'): ReturnType<typeof prepare> =>
  prepare(mse, { input, target: input.map(r => r.map(() => 0)), reduction, grad: false })

t.test('a prepared call alone: its own kernel, its own feeds, its cost', async t => {
  const one = call([[1, 2]])
  const run = preparedKernels.run([one])
  t.match(run.key, /^solo\|mse\|/)
  t.equal(run.name, 'mse')
  t.same(run.feeds(), buildFeeds(one))
  t.same(run.cost, { elements: one.cost.elements, steps: 1 })
  t.equal(preparedKernels.cost(one), one.cost)
})

t.test('prepared calls batched: rows concatenated and mapped to their requests, each share its own rows', async t => {
  const a = call([[1, 2], [3, 4]])
  const b = call([[5, 6]])
  t.equal(preparedKernels.plan(a)?.group, preparedKernels.plan(b)?.group, 'one batch group')
  t.same([preparedKernels.plan(a)?.rows, preparedKernels.plan(b)?.rows], [2, 1])
  const run = preparedKernels.run([a, b])
  t.match(run.key, /^batch\|mse\|/)
  const feeds = run.feeds()
  t.same(Array.from(feeds.input.data as Float32Array), [1, 2, 3, 4, 5, 6])
  t.same(Array.from(feeds.segment_ids.data as BigInt64Array), [0n, 0n, 1n])
  t.same(run.cost, { elements: a.cost.elements + b.cost.elements, steps: 1 })
  // the batch's loss, unreduced: [3,2], rows 0-1 of a and row 2 of b
  const loss = { type: 'float32' as const, dims: [3, 2], data: Float32Array.of(1, 4, 9, 16, 25, 36) }
  const [mineA, mineB] = preparedKernels.split([a, b], { loss })
  t.same([mineA.loss.dims, Array.from(mineA.loss.data as Float32Array)], [[2, 2], [1, 4, 9, 16]])
  t.same([mineB.loss.dims, Array.from(mineB.loss.data as Float32Array)], [[1, 2], [25, 36]])
})

t.test('reduced calls batched: one value per request', async t => {
  const a = call([[1, 2], [3, 4]], 'sum')
  const b = call([[5, 6]], 'sum')
  const shares = preparedKernels.split([a, b], { loss: { type: 'float32', dims: [2], data: Float32Array.of(30, 61) } })
  t.same(shares.map(s => [s.loss.dims, Array.from(s.loss.data as Float32Array)]), [[[], [30]], [[], [61]]])
})
