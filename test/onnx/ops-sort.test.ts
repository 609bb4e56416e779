import t from 'tap'
import * as ort from 'onnxruntime-node'
import { type FloatDType, Graph, type Value } from '../../src/onnx/graph'
import * as op from '../../src/onnx/ops'
import * as sort from '../../src/onnx/ops-sort'
import * as layout from '../../src/onnx/ops-layout'
import { backward } from '../../src/onnx/autodiff'

/**
 * Builds f(x) (its value, plus an optional int64 side output), differentiates <seed, f> w.r.t.
 * x, runs it, returns the value, the gradient and the side output.
 */
async function run (
  dtype: FloatDType,
  f: (x: Value) => Value | [Value, Value],
  x: number[],
  shape: number[],
  seed?: number[],
  seedShape?: number[]
): Promise<{ out: number[], gx: number[], extra: number[] }> {
  const G = new Graph('test', dtype)
  const X = G.input('x', dtype, shape.map(d => (d === 1 ? 1 : 'n')), true)
  const res = f(X)
  const [out, extra] = Array.isArray(res) ? res : [res, undefined]
  const S = G.input('seed', dtype, out.dims)
  const [gx] = backward(out, S, [X])
  G.output('out', out)
  G.output('gx', gx)
  if (extra !== undefined) G.output('extra', extra)
  const s = await ort.InferenceSession.create(G.toModel())
  const Arr = dtype === 'float32' ? Float32Array : Float64Array
  const ones = Array.from({ length: x.length }, () => 1)
  const r = await s.run({
    x: new ort.Tensor(dtype, Arr.from(x), shape),
    seed: new ort.Tensor(dtype, Arr.from(seed ?? ones), seedShape ?? (seed === undefined ? shape : [seed.length]))
  })
  await s.release()
  const nums = (v: ort.Tensor | undefined): number[] => (v === undefined ? [] : Array.from(v.data as ArrayLike<number | bigint>, Number))
  return { out: nums(r.out), gx: nums(r.gx), extra: nums(r.extra) }
}

for (const dtype of ['float32', 'float64'] as const) {
  t.test(`${dtype}: sortDescending sorts rows, returns the permutation, scatters the gradient back`, async t => {
    const r = await run(dtype, x => {
      const s = sort.sortDescending(x, 1)
      return [op.mul(s.values, x.graph.constant([1, 10, 100])), s.indices]
    }, [2, 9, 4, -1, -3, 7], [2, 3])
    t.same(r.out, [9, 40, 200, 7, -10, -300])
    t.same(r.extra, [1, 2, 0, 2, 0, 1])
    t.same(r.gx, [100, 1, 10, 10, 100, 1], 'each element gets the seed of its sorted place')
  })

  t.test(`${dtype}: cumsum and its VJP (reverse cumsum), inclusive and exclusive`, async t => {
    const inc = await run(dtype, x => op.cumsum(x, 0), [1, 2, 3, 4], [4], [1, 10, 100, 1000])
    t.same(inc.out, [1, 3, 6, 10])
    t.same(inc.gx, [1111, 1110, 1100, 1000])
    const exc = await run(dtype, x => op.cumsum(x, -1, { exclusive: true }), [1, 2, 3, 4], [4], [1, 10, 100, 1000])
    t.same(exc.out, [0, 1, 3, 6])
    t.same(exc.gx, [1110, 1100, 1000, 0])
  })

  t.test(`${dtype}: unpermute inverts a gather; transpose and flattenFrom round-trip gradients`, async t => {
    const r = await run(dtype, x => {
      const idx = x.graph.constant([2, 0, 1], 'int64')
      return sort.unpermute(x, idx, 0)
    }, [5, 6, 7], [3], [1, 10, 100])
    t.same(r.out, [6, 7, 5])
    t.same(r.gx, [100, 1, 10])
    const f = await run(dtype, x => layout.flattenFrom(layout.transpose(x, [1, 0, 2]), 1), [1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8], [2, 4])
    t.same(f.out, [1, 2, 5, 6, 3, 4, 7, 8])
    t.same(f.gx, [1, 2, 5, 6, 3, 4, 7, 8])
    const a = await run(dtype, x => layout.flattenFrom(x, 0), [1, 2, 3, 4], [2, 2], [1, 2, 3, 4], [1, 4])
    t.same(a.out, [1, 2, 3, 4])
  })

  t.test(`${dtype}: sorting an empty tensor (zero rows: ORT's TopK would die of SIGFPE) gives empty results`, async t => {
    const r = await run(dtype, x => { const s = sort.sortDescending(x, 1); return [s.values, s.indices] }, [], [0, 3])
    t.same(r.out, [])
    t.same(r.extra, [])
    t.same(r.gx, [])
  })
}
