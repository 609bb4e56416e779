import { type Dim, type DType, ELEM_TYPE, type Graph, tensorProto, Value, type Vjp } from './graph'

/**
 * Typed ops over graph values. Each differentiable op emits its ONNX node(s) and records its
 * vector-Jacobian product, so `backward` derives any loss's gradient from its forward graph.
 * A number operand becomes a constant of the graph's float type.
 */
export type Operand = Value | number

function g0 (...xs: Operand[]): Graph {
  for (const x of xs) if (x instanceof Value) return x.graph
  throw new Error('an op needs at least one graph value')
}

function val (g: Graph, x: Operand): Value { return x instanceof Value ? x : g.constant(x) }

/** Static broadcast of dims, numpy rules. */
export function broadcastDims (...all: ReadonlyArray<readonly Dim[]>): Dim[] {
  const rank = Math.max(...all.map(d => d.length))
  const out: Dim[] = []
  for (let i = 0; i < rank; i++) {
    const ds = all.map(d => d[d.length - rank + i] ?? 1)
    out.push(ds.every(d => d === 1) ? 1 : 'n')
  }
  return out
}

/** Sums a broadcast gradient back down to the shape of `x` (the adjoint of broadcasting). */
export function unbroadcast (grad: Value, x: Value): Value {
  const lead = grad.rank - x.rank
  let g = grad
  if (lead > 0) g = reduceSum(g, range(lead), false)
  const axes = x.dims.flatMap((d, i) => (d === 1 && g.dims[i] !== 1 ? [i] : []))
  return axes.length > 0 ? reduceSum(g, axes, true) : g
}

function range (n: number): number[] { return Array.from({ length: n }, (_, i) => i) }

function binary (op: string, a: Operand, b: Operand, vjp: (g: Value, a: Value, b: Value, out: Value) => [Value | undefined, Value | undefined]): Value {
  const G = g0(a, b)
  const x = val(G, a)
  const y = val(G, b)
  const out = G.node(op, [x, y], {}, x.dtype, broadcastDims(x.dims, y.dims))
  return G.record([x, y], out, grad => {
    const [gx, gy] = vjp(grad, x, y, out)
    return [gx !== undefined && x.tracked ? unbroadcast(gx, x) : undefined, gy !== undefined && y.tracked ? unbroadcast(gy, y) : undefined]
  })
}

function unary (op: string, x: Value, vjp: (g: Value, x: Value, out: Value) => Value, attrs = {}): Value {
  const out = x.graph.node(op, [x], attrs, x.dtype, x.dims)
  return x.graph.record([x], out, g => [vjp(g, x, out)])
}

// ---- elementwise arithmetic ----------------------------------------------------------

/** a + b, broadcasting. */
export function add (a: Operand, b: Operand): Value { return binary('Add', a, b, g => [g, g]) }
/** a - b, broadcasting. */
export function sub (a: Operand, b: Operand): Value { return binary('Sub', a, b, g => [g, neg(g)]) }
/** a * b, broadcasting. */
export function mul (a: Operand, b: Operand): Value {
  return binary('Mul', a, b, (g, x, y) => [x.tracked ? mul(g, y) : undefined, y.tracked ? mul(g, x) : undefined])
}
/** a / b, broadcasting. */
export function div (a: Operand, b: Operand): Value {
  return binary('Div', a, b, (g, x, y, out) => [x.tracked ? div(g, y) : undefined, y.tracked ? neg(div(mul(g, out), y)) : undefined])
}
/** -x */
export function neg (x: Value): Value { return unary('Neg', x, g => neg(g)) }
/** e^x */
export function exp (x: Value): Value { return unary('Exp', x, (g, _x, out) => mul(g, out)) }
/** Natural log. */
export function log (x: Value): Value { return unary('Log', x, (g, x) => div(g, x)) }
/** |x|; gradient sign(x), 0 at 0 (and at NaN) as in PyTorch. */
export function abs (x: Value): Value { return unary('Abs', x, (g, x) => mul(g, sign(x))) }
/** Square root. */
export function sqrt (x: Value): Value { return unary('Sqrt', x, (g, _x, out) => div(g, mul(out, 2))) }
/** tanh */
export function tanh (x: Value): Value { return unary('Tanh', x, (g, _x, out) => mul(g, sub(1, mul(out, out)))) }
/** Logistic sigmoid. */
export function sigmoid (x: Value): Value { return unary('Sigmoid', x, (g, _x, out) => mul(g, mul(out, sub(1, out)))) }
/** x^p for a run-time or constant exponent p; gradient w.r.t. x only, 0 where p == 0 (torch's pow_backward, not 0 * x^-1). */
export function pow (x: Value, p: Operand): Value {
  const G = x.graph
  const e = val(G, p)
  const out = G.node('Pow', [x, e], {}, x.dtype, broadcastDims(x.dims, e.dims))
  return G.record([x], out, g => [unbroadcast(where(equal(e, 0), 0, mul(g, mul(e, G.node('Pow', [x, sub(e, 1)], {}, x.dtype, out.dims)))), x)])
}
/** x*x */
export function square (x: Value): Value { return mul(x, x) }

/** sign(x) as torch.sign, 0 at NaN where ONNX's Sign is NaN (no gradient). */
export function sign (x: Value): Value { return sub(mask(greater(x, 0)), mask(less(x, 0))) }

// ---- comparisons and selection (no gradient through conditions) ----------------------

function compare (op: string, a: Operand, b: Operand): Value {
  const G = g0(a, b)
  const x = val(G, a)
  const y = val(G, b)
  return G.node(op, [x, y], {}, 'bool', broadcastDims(x.dims, y.dims))
}
/** a > b */
export const greater = (a: Operand, b: Operand): Value => compare('Greater', a, b)
/** a >= b */
export const greaterOrEqual = (a: Operand, b: Operand): Value => compare('GreaterOrEqual', a, b)
/** a < b */
export const less = (a: Operand, b: Operand): Value => compare('Less', a, b)
/** a <= b */
export const lessOrEqual = (a: Operand, b: Operand): Value => compare('LessOrEqual', a, b)
/** a == b (also for int64 indices). */
export const equal = (a: Operand, b: Operand): Value => compare('Equal', a, b)
/** Logical and. */
export function and (a: Value, b: Value): Value { return a.graph.node('And', [a, b], {}, 'bool', broadcastDims(a.dims, b.dims)) }
/** Logical or, broadcasting. */
export function or (a: Value, b: Value): Value { return a.graph.node('Or', [a, b], {}, 'bool', broadcastDims(a.dims, b.dims)) }
/** Logical not. */
export function not (a: Value): Value { return a.graph.node('Not', [a], {}, 'bool', a.dims) }

/** cond ? a : b, broadcasting; the gradient goes to the branch that was taken. */
export function where (cond: Value, a: Operand, b: Operand): Value {
  const G = cond.graph
  const x = val(G, a)
  const y = val(G, b)
  const out = G.node('Where', [cond, x, y], {}, x.dtype, broadcastDims(cond.dims, x.dims, y.dims))
  return G.record([x, y], out, g => {
    const zero = G.constant(0, g.dtype)
    return [x.tracked ? unbroadcast(where(cond, g, zero), x) : undefined, y.tracked ? unbroadcast(where(cond, zero, g), y) : undefined]
  })
}

/** Converts to another element type (no gradient: used on masks and indices). */
export function cast (x: Value, to: DType): Value {
  if (x.dtype === to) return x
  return x.graph.node('Cast', [x], { to: ELEM_TYPE[to] }, to, x.dims)
}

/** A float 0/1 mask of the graph's float type. */
export function mask (cond: Value): Value { return cast(cond, cond.graph.float) }

// ---- clamps with PyTorch's gradient conventions at the boundary ----------------------

/**
 * max(x, 0); gradient 0 at x == 0 (torch.relu). The clamps' gradients select, as PyTorch's do,
 * rather than multiply by a 0/1 mask: a NaN or infinite gradient where the clamp is flat gives
 * 0, and relu passes the gradient where x is NaN (its test is x <= 0).
 */
export function relu (x: Value): Value {
  const G = x.graph
  const out = G.node('Relu', [x], {}, x.dtype, x.dims)
  return G.record([x], out, g => [where(lessOrEqual(x, 0), 0, g)])
}
/** max(x, lo); gradient passes at x == lo (torch.clamp_min). */
export function clampMin (x: Value, lo: Operand): Value {
  const G = x.graph
  const l = val(G, lo)
  const out = G.node('Max', [x, l], {}, x.dtype, broadcastDims(x.dims, l.dims))
  return G.record([x], out, g => [unbroadcast(where(greaterOrEqual(x, l), g, 0), x)])
}
/** min(x, hi); gradient passes at x == hi (torch.clamp_max). */
export function clampMax (x: Value, hi: Operand): Value {
  const G = x.graph
  const h = val(G, hi)
  const out = G.node('Min', [x, h], {}, x.dtype, broadcastDims(x.dims, h.dims))
  return G.record([x], out, g => [unbroadcast(where(lessOrEqual(x, h), g, 0), x)])
}
/** clamp(x, lo, hi) as torch.clamp: gradient passes inside the closed interval. */
export function clamp (x: Value, lo: Operand, hi: Operand): Value { return clampMax(clampMin(x, lo), hi) }
/** Elementwise max of two tensors; ties split the gradient in halves (torch.maximum). */
export function maximum (a: Value, b: Value): Value {
  return binary('Max', a, b, (g, x, y) => {
    const half = mul(g, 0.5)
    const tie = equal(x, y)
    return [where(tie, half, where(greater(x, y), g, 0)), where(tie, half, where(greater(y, x), g, 0))]
  })
}

// ---- numerically careful composites with their own gradients --------------------------

/** The forward of a `custom` op that saves values for its gradient: its output and those values. */
export interface Saving<S> { value: Value, saved: S }

/**
 * A composite op with its own gradient: `build` emits the forward nodes (not differentiated
 * through), `vjp` gives the gradient of each input. For numerically careful formulas whose
 * naive derivative would be unstable, and for PyTorch's hand-written backward formulas.
 * Values of the forward that the gradient reuses (its output among them) are returned by
 * `build` as `{ value, saved }` and handed to `vjp`, as tfjs-core's `customGrad` hands `saved`.
 */
export function custom (inputs: Value[], build: () => Value, vjp: Vjp): Value
export function custom<S> (inputs: Value[], build: () => Saving<S>, vjp: (grad: Value, saved: S) => Array<Value | undefined>): Value
export function custom<S> (inputs: Value[], build: () => Value | Saving<S>, vjp: (grad: Value, saved: S) => Array<Value | undefined>): Value {
  const G = inputs[0].graph
  const built = G.untracked(build)
  const inner = built instanceof Value ? built : built.value
  const saved = (built instanceof Value ? undefined : built.saved) as S
  const out = new Value(G, inner.name, inner.dtype, inner.dims, inputs.some(x => x.tracked))
  return G.record(inputs, out, grad => vjp(grad, saved))
}

/** log(1 + x), accurate for tiny x (Kahan's trick); gradient 1 / (1 + x). */
export function log1p (x: Value): Value {
  return custom([x], () => {
    const w = add(x, 1)
    return x.graph.node('Where', [equal(w, 1), x, div(mul(log(w), x), sub(w, 1))], {}, x.dtype, x.dims)
  }, g => [div(g, add(x, 1))])
}
/** log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|); gradient sigmoid(x). */
export function softplus (x: Value): Value {
  return custom([x], () => add(x.graph.node('Relu', [x], {}, x.dtype, x.dims), log1p(exp(neg(abs(x))))), g => [mul(g, sigmoid(x))])
}
/** log(sigmoid(x)) = -softplus(-x), stable for large |x|. */
export function logSigmoid (x: Value): Value { return neg(softplus(neg(x))) }
/** log_softmax along `axis`; gradient g - softmax * sum(g). */
export function logSoftmax (x: Value, axis: number): Value {
  return custom([x], () => {
    let out = x.graph.node('LogSoftmax', [x], { axis }, x.dtype, x.dims)
    // ONNX Runtime's float64 kernel answers finite values (at times garbage) for a row holding
    // NaN or +Infinity, where PyTorch's whole row is NaN (x - max is NaN in it); its float32
    // kernel already does. Such elements are counted, not summed: the sum of a finite row
    // ([1e308, 1e308]) may overflow to +Infinity.
    if (x.dtype === 'float64') out = add(out, where(greater(reduceSum(mask(not(less(x, Infinity))), [axis], true), 0), NaN, 0))
    return { value: out, saved: out }
  }, (g, out) => [sub(g, mul(exp(out), reduceSum(g, [axis], true)))])
}
/** softmax along `axis`. */
export function softmax (x: Value, axis: number): Value { return exp(logSoftmax(x, axis)) }

// ---- reductions and shapes --------------------------------------------------------------

function axesConst (g: Graph, axes: readonly number[]): Value { return g.constant(axes, 'int64') }

/** `axis` of x counted from the front when negative: the form ONNX attributes and gradients share. */
export function axisOf (x: Value, axis: number): number { return axis < 0 ? axis + x.rank : axis }

/** A reduction's axes (all when `axes` is empty), counted from the front, and its static dims. */
function reduced (x: Value, axes: readonly number[], keepdims: boolean): { all: boolean, ax: number[], dims: Dim[] } {
  const all = axes.length === 0
  const ax = all ? range(x.rank) : axes.map(a => axisOf(x, a))
  const dims = keepdims ? x.dims.map((d, i) => (ax.includes(i) ? 1 : d)) : x.dims.filter((_, i) => !ax.includes(i))
  return { all, ax, dims }
}

/** Sum over `axes` (all axes when empty). */
export function reduceSum (x: Value, axes: readonly number[], keepdims: boolean): Value {
  const G = x.graph
  const { all, ax, dims } = reduced(x, axes, keepdims)
  const out = G.node('ReduceSum', all ? [x] : [x, axesConst(G, ax)], { keepdims: keepdims ? 1 : 0 }, x.dtype, dims)
  return G.record([x], out, g => [expandAs(keepdims || ax.length === 0 ? g : unsqueeze(g, ax), x)])
}
/** Sum of every element, as a 0-d tensor. */
export function sumAll (x: Value): Value { return x.rank === 0 ? x : accurateSum(x, [], false) }

/**
 * reduceSum accumulated in float64 for a float32 x. ONNX Runtime sums float32 one element
 * after another, which drifts past the contract's tolerance over millions of elements
 * (PyTorch sums in a cascade); float64 accumulation is exact enough at any size we admit.
 */
export function accurateSum (x: Value, axes: readonly number[], keepdims: boolean): Value {
  if (x.dtype !== 'float32') return reduceSum(x, axes, keepdims)
  const G = x.graph
  const { all, ax, dims } = reduced(x, axes, keepdims)
  const wide = G.node('Cast', [x], { to: ELEM_TYPE.float64 }, 'float64', x.dims)
  const sum = G.node('ReduceSum', all ? [wide] : [wide, axesConst(G, ax)], { keepdims: keepdims ? 1 : 0 }, 'float64', dims)
  const out = G.node('Cast', [sum], { to: ELEM_TYPE.float32 }, 'float32', dims)
  return G.record([x], out, g => [expandAs(keepdims || ax.length === 0 ? g : unsqueeze(g, ax), x)])
}
/** Max over `axes` (no gradient: used for stabilising shifts and masks). */
export function reduceMax (x: Value, axes: readonly number[], keepdims: boolean): Value {
  const G = x.graph
  const ax = axes.map(a => axisOf(x, a))
  const dims = keepdims ? x.dims.map((d, i) => (ax.includes(i) ? 1 : d)) : x.dims.filter((_, i) => !ax.includes(i))
  return G.node('ReduceMax', [x, axesConst(G, ax)], { keepdims: keepdims ? 1 : 0 }, x.dtype, dims)
}
/**
 * Cumulative sum along `axis`: `exclusive` starts from 0 (each entry sums those before it),
 * `reverse` runs from the end. Gradient: the cumulative sum the other way.
 */
export function cumsum (x: Value, axis: number, opts: { exclusive?: boolean, reverse?: boolean } = {}): Value {
  const G = x.graph
  const ax = axisOf(x, axis)
  const exclusive = opts.exclusive === true
  const reverse = opts.reverse === true
  const out = G.node('CumSum', [x, G.constant(ax, 'int64')], { exclusive: exclusive ? 1 : 0, reverse: reverse ? 1 : 0 }, x.dtype, x.dims)
  return G.record([x], out, g => [cumsum(g, ax, { exclusive, reverse: !reverse })])
}

/** Inserts size-1 axes (positions in the output). */
export function unsqueeze (x: Value, axes: readonly number[]): Value {
  const G = x.graph
  const rank = x.rank + axes.length
  const ax = axes.map(a => (a < 0 ? a + rank : a))
  const dims: Dim[] = []
  let k = 0
  for (let i = 0; i < rank; i++) dims.push(ax.includes(i) ? 1 : x.dims[k++])
  const out = G.node('Unsqueeze', [x, axesConst(G, ax)], {}, x.dtype, dims)
  return G.record([x], out, g => [squeeze(g, ax)])
}
/** Removes size-1 axes. */
export function squeeze (x: Value, axes: readonly number[]): Value {
  const G = x.graph
  const ax = axes.map(a => axisOf(x, a))
  const out = G.node('Squeeze', [x, axesConst(G, ax)], {}, x.dtype, x.dims.filter((_, i) => !ax.includes(i)))
  return G.record([x], out, g => [unsqueeze(g, ax)])
}
/** The shape of x as a 1-D int64 tensor. */
export function shapeOf (x: Value): Value { return x.graph.node('Shape', [x], {}, 'int64', [x.rank === 1 ? 1 : 'n']) }
/** Broadcasts x to the shape of `like` (whose dims it must broadcast to). */
export function expandAs (x: Value, like: Value): Value {
  const G = x.graph
  const out = G.node('Expand', [x, shapeOf(like)], {}, x.dtype, broadcastDims(x.dims, like.dims))
  return G.record([x], out, g => [unbroadcast(g, x)])
}
/** Number of elements of x, as a 0-d float. */
export function numel (x: Value): Value { return cast(x.graph.node('Size', [x], {}, 'int64', []), x.graph.float) }
/** Size of one axis of x as a 0-d tensor: of the graph's float type, or int64 to index or shape with. */
export function dimSize (x: Value, axis: number, dtype: DType = x.graph.float): Value {
  const G = x.graph
  const s = G.node('Gather', [shapeOf(x), G.constant(axisOf(x, axis), 'int64')], { axis: 0 }, 'int64', [])
  return cast(s, dtype)
}
/** 0, 1, ..., n-1 (int64) for a 0-d int64 n. */
export function arange (n: Value): Value {
  const G = n.graph
  return G.node('Range', [G.constant(0, 'int64'), n, G.constant(1, 'int64')], {}, 'int64', ['n'])
}
/** A tensor of the run-time shape `shape` (1-D int64) and static `dims`, every element `value` (constant, no gradient). */
export function fill (shape: Value, value: number, dtype: DType, dims: readonly Dim[]): Value {
  return shape.graph.node('ConstantOfShape', [shape], { value: tensorProto(dtype, [1], [value]) }, dtype, dims)
}
/** A tensor of zeros shaped like x, of dtype `dtype`. */
export function zerosLike (x: Value, dtype: DType = x.graph.float): Value { return fill(shapeOf(x), 0, dtype, x.dims) }

/**
 * One-hot float mask of class indices `idx`, inserted as axis `axis`, with as many classes
 * as `like` has along that axis. Indices outside [0, C) (ignored samples) give all zeros.
 */
export function oneHot (idx: Value, like: Value, axis: number): Value {
  const classes = arange(dimSize(like, axis, 'int64'))
  // classes shaped [C, 1, ..., 1] so that it broadcasts along `axis` of the unsqueezed indices
  const trailing = idx.rank - axis
  const cls = trailing > 0 ? unsqueeze(classes, range(trailing).map(i => i + 1)) : classes
  return mask(equal(unsqueeze(idx, [axis]), cls))
}

// ---- indexing ------------------------------------------------------------------------

/** x gathered along `axis` at int64 `idx` (same rank as x); gradient scattered back, summing repeats. */
export function gatherElements (x: Value, idx: Value, axis: number): Value {
  const G = x.graph
  const out = G.node('GatherElements', [x, idx], { axis }, x.dtype, idx.dims)
  return G.record([x], out, g => [scatterAdd(x, idx, g, axis)])
}
/** A tensor of `like`'s shape and type holding `updates` summed into zeros at `idx` along `axis` (no gradient). */
export function scatterAdd (like: Value, idx: Value, updates: Value, axis: number): Value {
  return like.graph.node('ScatterElements', [zerosLike(like, like.dtype), idx, updates], { axis, reduction: 'add' }, like.dtype, like.dims)
}
/** Rows of x at int64 `idx` along `axis` (numpy take; no gradient: used on class weights). */
export function take (x: Value, idx: Value, axis = 0): Value {
  const dims = [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)]
  return x.graph.node('Gather', [x, idx], { axis }, x.dtype, dims)
}
