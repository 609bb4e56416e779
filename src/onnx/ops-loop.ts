import { type Dim, type DType, Graph, tensorProto, Value } from './graph'
import { add, equal, exp, log, shapeOf, sub, where, zerosLike } from './ops'

/**
 * Ops for recursions run inside the graph (ONNX Scan) and the plumbing they need. None of
 * them is recorded on the tape: they are meant for the insides of `custom` ops, whose VJP
 * supplies the gradient.
 */

/**
 * A float constant that may be NaN or infinite. `Graph.constant` caches by JSON text, in
 * which NaN and both infinities all read `null`, so those go through a Constant node.
 */
export function special (g: Graph, value: number, dtype: DType = g.float): Value {
  if (Number.isFinite(value)) return g.constant(value, dtype)
  return g.node('Constant', [], { value: tensorProto(g.fresh('special'), dtype, [], [value]) }, dtype, [])
}

/** The same tensor seen from a subgraph (a Scan body), which may read outer values by name. */
export function outer (body: Graph, v: Value): Value { return new Value(body, v.name, v.dtype, v.dims, false) }

/** Concatenation along `axis`. */
export function concat (xs: Value[], axis: number): Value {
  const rank = xs[0].rank
  const dims = xs[0].dims.map((d, i) => (i === axis && xs.length > 1 ? 'n' : d))
  return xs[0].graph.node('Concat', xs, { axis: axis < 0 ? axis + rank : axis }, xs[0].dtype, dims)
}

/**
 * x shifted by `by` places along `axis` (to higher indices when positive), keeping its size:
 * the places left empty hold `fill` (a 0-d value of x's type). One Pad with a negative end pad.
 */
export function shift (x: Value, by: number, axis: number, fill: Value): Value {
  const G = x.graph
  const pads = new Array<number>(2 * x.rank).fill(0)
  pads[axis] = by
  pads[x.rank + axis] = -by
  return G.node('Pad', [x, G.constant(pads, 'int64'), fill], {}, x.dtype, x.dims)
}

/**
 * log(sum(exp(x_i))) elementwise over same-shaped (or broadcasting) terms, shifted by their
 * max so nothing overflows; all terms -inf gives -inf (not NaN).
 */
export function logSumExp (xs: Value[], negInf: Value): Value {
  const G = xs[0].graph
  const dims = xs[0].dims
  const m = G.node('Max', xs, {}, xs[0].dtype, dims)
  const shiftBy = where(equal(m, negInf), 0, m)
  const terms = xs.map(x => exp(sub(x, shiftBy)))
  const total = terms.length === 1 ? terms[0] : G.node('Sum', terms, {}, xs[0].dtype, dims)
  return add(log(total), shiftBy)
}

/** The size of `axis` of x as a 0-d int64. */
export function dimOf (x: Value, axis: number): Value {
  return x.graph.node('Gather', [shapeOf(x), x.graph.constant(axis, 'int64')], { axis: 0 }, 'int64', [])
}

/** 0, 1, ..., n-1 for a 0-d int64 n. */
export function arange (n: Value): Value {
  const G = n.graph
  return G.node('Range', [G.constant(0, 'int64'), n, G.constant(1, 'int64')], {}, 'int64', ['n'])
}

/** x broadcast to a run-time shape (a 1-D int64), with the given static dims. */
export function expandTo (x: Value, shape: Value, dims: readonly Dim[]): Value {
  return x.graph.node('Expand', [x, shape], {}, x.dtype, dims)
}

/** Cumulative sum along a 1-D int64 (exclusive: each entry is the sum of those before it). */
export function exclusiveCumsum (x: Value): Value {
  const G = x.graph
  return G.node('CumSum', [x, G.constant(0, 'int64')], { exclusive: 1 }, x.dtype, x.dims)
}

/** A tensor of x's shape and type holding `updates` summed into zeros at `idx` along `axis`. */
export function scatterAdd (like: Value, idx: Value, updates: Value, axis: number): Value {
  return like.graph.node('ScatterElements', [zerosLike(like, like.dtype), idx, updates], { axis, reduction: 'add' }, like.dtype, like.dims)
}

/** Shape of one Scan value: its type and static dims. */
interface Slot { dtype: DType, dims: readonly Dim[] }

/**
 * An ONNX Scan: `body` maps the states and one slice (along axis 0) of each scanned input to
 * the next states and per-step outputs, which come back stacked along a new axis 0. With
 * `reverse`, the inputs are read from the last slice back and the stacked outputs are still in
 * forward order. The body may read outer values through `outer`.
 */
export function scan (G: Graph, spec: {
  states: Value[]
  inputs: Value[]
  reverse?: boolean
  body: (b: Graph, states: Value[], slices: Value[]) => { states: Value[], outputs: Value[] }
}): { states: Value[], outputs: Value[] } {
  const b = new Graph(G.fresh('scan_body'), G.float)
  const states = spec.states.map(s => b.input(b.fresh('state'), s.dtype, s.dims))
  const slices = spec.inputs.map(x => b.input(b.fresh('slice'), x.dtype, x.dims.slice(1)))
  const res = b.untracked(() => spec.body(b, states, slices))
  const outs = [...res.states, ...res.outputs]
  outs.forEach(v => b.output(b.fresh('out'), v))
  const steps: Dim = spec.inputs[0].dims[0]
  const slots: Slot[] = [
    ...spec.states.map(s => ({ dtype: s.dtype, dims: s.dims })),
    ...res.outputs.map(o => ({ dtype: o.dtype, dims: [steps, ...o.dims] }))
  ]
  const dir = spec.reverse === true ? 1 : 0
  const attrs = {
    body: b.toGraphProto(),
    num_scan_inputs: spec.inputs.length,
    scan_input_directions: spec.inputs.map(() => dir),
    scan_output_directions: res.outputs.map(() => dir)
  }
  const values = G.nodeOutputs('Scan', [...spec.states, ...spec.inputs], attrs, slots)
  return { states: values.slice(0, spec.states.length), outputs: values.slice(spec.states.length) }
}
