import { type Dim, type DType, type FloatDType, Graph, Value } from './graph'
import { add, cast, equal, exp, log, sub, where } from './ops'

/**
 * Recursions run inside the graph as an ONNX Scan, and the log-space sum their steps take.
 * Nothing here is recorded on the tape: these are for the insides of `custom` ops, whose VJP
 * supplies the gradient.
 */

/** The same tensor seen from a subgraph (a Scan body), which may read outer values by name. */
export function outer (body: Graph, v: Value): Value { return new Value(body, v.name, v.dtype, v.dims, false) }

/**
 * log(sum(exp(x_i))) elementwise over same-shaped (or broadcasting) terms, shifted by their
 * max so nothing overflows; all terms -inf gives -inf (not NaN). `near` is the type the
 * shifted terms are exponentiated and summed in: they lie in [-inf, 0], where float32 is as
 * good as the log-values' own rounding allows for, while the shift keeps the terms' type.
 */
export function logSumExp (xs: Value[], negInf: Value, near: FloatDType = xs[0].dtype as FloatDType): Value {
  const G = xs[0].graph
  const dims = xs[0].dims
  const m = G.node('Max', xs, {}, xs[0].dtype, dims)
  const shiftBy = where(equal(m, negInf), 0, m)
  const terms = xs.map(x => exp(cast(sub(x, shiftBy), near)))
  const total = terms.length === 1 ? terms[0] : G.node('Sum', terms, {}, near, dims)
  return add(cast(log(total), m.dtype), shiftBy)
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
