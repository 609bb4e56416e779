import { defineLoss, STANDARD_REDUCTIONS, Type, type Arg } from './loss'
import { type FloatDType, type Graph, type Value } from '../onnx/graph'
import {
  add, and, arange, cast, clampMin, cumsum, custom, dimSize, div, equal, exp, expandAs,
  less, mul, neg, not, or, reduceMax, scatterAdd, shapeOf, squeeze, sub, sumAll, take, unsqueeze, where
} from '../onnx/ops'
import { concat, expandTo, shift } from '../onnx/ops-layout'
import { logSumExp, outer, scan } from '../onnx/ops-scan'
import { fail } from '../errors'
import { at, fmtShape, shown } from '../tensor/tensor'

/**
 * `F.ctc_loss`: connectionist temporal classification, the negative log-likelihood of each
 * target sequence summed over its alignments with the input frames. The alpha recursion (and
 * the beta recursion of the gradient) run as ONNX Scans over time in log space.
 */
export default defineLoss({
  name: 'ctc',
  summary: 'Connectionist temporal classification loss of label sequences under per-frame log-probabilities.',
  reference: 'torch.nn.functional.ctc_loss',
  category: 'sequence',
  notes: [
    '`mean` divides each sample\'s loss by its target length (at least 1), then averages over the batch, as PyTorch.',
    'The gradient is the exact derivative w.r.t. `log_probs`. PyTorch\'s kernel returns exp(log_probs) - posterior instead; the two agree once back-propagated through the log_softmax that makes `log_probs`.',
    'Refused where PyTorch does not check: a label that is the blank or outside [0, C) (400 `INDEX_OUT_OF_RANGE`). An empty `log_probs` (T, N or C of 0) is refused too (400 `SHAPE_MISMATCH`). Places of padded targets past a sample\'s target length, and frames past its input length, are never read and may hold anything (NaN included).',
    'The frames T run one after another (a Scan): T is bounded by `MAX_STEPS` (400 `TOO_LARGE` past it), as the elements are by `MAX_ELEMENTS`.',
    'A sample with input length 0 gets its exact loss: 0 when its target is empty too, else infeasible (Infinity; 0 with `zero_infinity`). PyTorch 1.13\'s CPU kernel answers such a sample with a value that is not its own (another sample\'s, in our runs).'
  ],
  args: [
    { name: 'log_probs', kind: 'float', grad: true, doc: 'Log-probabilities [T,N,C] (frames, batch, classes) or unbatched [T,C].' },
    { name: 'targets', kind: 'index', doc: 'Labels: padded [N,S] (rows read up to their target length), or concatenated 1-D of length sum(target_lengths); never the blank.' },
    { name: 'input_lengths', kind: 'index', doc: 'Frames used per sample, [N] (0-d or [1] when unbatched), each in [0, T].' },
    { name: 'target_lengths', kind: 'index', doc: 'Labels per sample, [N] (0-d or [1] when unbatched).' }
  ],
  options: {
    blank: Type.Integer({ default: 0, minimum: 0, description: 'The class index of the blank label.' }),
    zero_infinity: Type.Boolean({ default: false, description: 'Infeasible samples (infinite loss) give loss 0 and gradient 0.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: {
    // log of per-frame probabilities: [T=3, N=2, C=3]
    log_probs: [
      [[-0.51, -1.61, -1.61], [-1.2, -0.69, -1.61]],
      [[-1.39, -0.69, -1.39], [-0.36, -2.3, -1.61]],
      [[-1.2, -1.61, -0.69], [-0.92, -0.92, -1.61]]
    ],
    targets: [[1, 2], [2, 0]],
    input_lengths: [3, 3],
    target_lengths: [2, 1],
    grad: true
  },
  // the alpha and beta lattices: [T,N,2S+1] each (S: padded columns, or the longest target)
  workspace: a => {
    const [T, N] = a.log_probs.shape.length === 3 ? a.log_probs.shape : [a.log_probs.shape[0], 1]
    const S = a.targets.shape.length === 2 ? a.targets.shape[1] : longest(a.target_lengths)
    return { [`the CTC lattice [T,N,2S+1] = [${T},${N},${2 * S + 1}]`]: Math.max(T, 1) * Math.max(N, 1) * (2 * S + 1) }
  },
  steps: a => a.log_probs.shape[0],
  check: (a, o) => {
    const { batched, N } = checkArgs(a, o.blank)
    return batched ? [N] : []
  },
  forward: (g, x, o) => {
    const batched = x.log_probs.rank === 3
    const lp = batched ? x.log_probs : unsqueeze(x.log_probs, [1])
    const il = x.input_lengths.rank === 0 ? unsqueeze(x.input_lengths, [0]) : x.input_lengths
    const tl = x.target_lengths.rank === 0 ? unsqueeze(x.target_lengths, [0]) : x.target_lengths
    const targets = paddedTargets(x.targets, tl, x.blank)
    const nll = ctcNll(g, lp, targets, il, tl, x.blank, o.zero_infinity)
    if (o.reduction === 'sum') return sumAll(nll)
    if (o.reduction === 'mean') return div(sumAll(div(nll, clampMin(cast(tl, g.float), 1))), dimSize(nll, 0))
    return batched ? nll : squeeze(nll, [0])
  }
})

/** The largest of the target lengths (0 when there are none). */
function longest (lengths: Arg): number {
  let m = 0
  for (let i = 0; i < lengths.data.length; i++) m = Math.max(m, at(lengths.data, i))
  return m
}

/** Validates the four arguments as `F.ctc_loss` does (and the labels, which it does not). */
function checkArgs (a: Record<string, Arg>, blank: number): { batched: boolean, N: number } {
  const lp = a.log_probs
  const rank = lp.shape.length
  if (rank !== 2 && rank !== 3) fail('SHAPE_MISMATCH', `log_probs: expected [T,N,C] or unbatched [T,C], got ${fmtShape(lp.shape)}`)
  const batched = rank === 3
  const [T, N, C] = batched ? lp.shape : [lp.shape[0], 1, lp.shape[1]]
  if (T * N * C === 0) fail('SHAPE_MISMATCH', `log_probs: must not be empty, got ${fmtShape(lp.shape)}`)
  if (blank >= C) fail('INDEX_OUT_OF_RANGE', `blank: ${blank} is not a class of log_probs ${fmtShape(lp.shape)}; it must lie in [0, ${C})`)
  const lengths = (name: string): number[] => {
    const L = a[name]
    const ok = L.shape.length === 0 ? N === 1 : L.shape.length === 1 && L.shape[0] === N
    if (!ok) {
      fail('SHAPE_MISMATCH', batched
        ? `${name}: expected one length per sample, shape [${N}] (N of log_probs ${fmtShape(lp.shape)}), got ${fmtShape(L.shape)}`
        : `${name}: expected a 0-d tensor or [1] for unbatched log_probs ${fmtShape(lp.shape)}, got ${fmtShape(L.shape)}`)
    }
    return Array.from({ length: N }, (_, i) => at(L.data, i))
  }
  const il = lengths('input_lengths')
  const tl = lengths('target_lengths')
  il.forEach((v, i) => {
    if (v < 0 || v > T) fail('INDEX_OUT_OF_RANGE', `input_lengths: ${v} at position ${i} is outside [0, ${T}] (T, the frames of log_probs ${fmtShape(lp.shape)})`)
  })
  tl.forEach((v, i) => { if (v < 0) fail('INDEX_OUT_OF_RANGE', `target_lengths: ${v} at position ${i} is negative`) })

  const tg = a.targets
  const total = tl.reduce((s, v) => s + v, 0)
  // flat position of label s of sample n
  let label: (n: number, s: number) => number
  if (tg.shape.length === 1) {
    // concatenated (also the unbatched [S], as PyTorch reads it)
    if (tg.shape[0] !== total) {
      fail('SHAPE_MISMATCH', `targets: 1-D targets are the concatenated labels of every sample, so their length must be sum(target_lengths) = ${total}, got ${fmtShape(tg.shape)}`)
    }
    const offsets: number[] = []
    tl.reduce((sum, v, n) => { offsets[n] = sum; return sum + v }, 0)
    label = (n, s) => offsets[n] + s
  } else if (tg.shape.length === 2) {
    const [rows, S] = tg.shape
    if (rows !== N) fail('SHAPE_MISMATCH', `targets: padded targets need one row per sample, ${N} (N of log_probs ${fmtShape(lp.shape)}), got ${fmtShape(tg.shape)}`)
    tl.forEach((v, i) => {
      if (v > S) fail('INDEX_OUT_OF_RANGE', `target_lengths: ${v} at position ${i} exceeds the ${S} columns of padded targets ${fmtShape(tg.shape)}`)
    })
    label = (n, s) => n * S + s
  } else {
    fail('SHAPE_MISMATCH', `targets: expected padded [N,S] or concatenated 1-D labels, got ${fmtShape(tg.shape)}`)
  }
  for (let n = 0; n < N; n++) {
    for (let s = 0; s < tl[n]; s++) {
      const p = label(n, s)
      const v = at(tg.data, p)
      if (v < 0 || v >= C) fail('INDEX_OUT_OF_RANGE', `targets: label ${shown(tg.data, p)} at flat position ${p} is out of range [0, ${C})`)
      if (v === blank) fail('INDEX_OUT_OF_RANGE', `targets: label ${v} at flat position ${p} is the blank (blank = ${blank}); targets must not contain it`)
    }
  }
  return { batched, N }
}

/**
 * Targets as a padded [N,S] int64 whose places past each target length hold the blank: they
 * are never read, and need not be valid class indices. Concatenated targets are spread out
 * to S = max(target_lengths) columns.
 */
function paddedTargets (targets: Value, tl: Value, blank: Value): Value {
  if (targets.rank === 2) return blankPast(targets, tl, blank)
  const S = reduceMax(tl, [0], false)
  const cols = unsqueeze(arange(S), [0]) // [1,S]
  const valid = less(cols, unsqueeze(tl, [1])) // [N,S]
  const pos = where(valid, add(unsqueeze(cumsum(tl, 0, { exclusive: true }), [1]), cols), targets.graph.constant(0, 'int64'))
  return where(valid, take(targets, pos), blank)
}

function blankPast (targets: Value, tl: Value, blank: Value): Value {
  const cols = unsqueeze(arange(dimSize(targets, 1, 'int64')), [0])
  return where(less(cols, unsqueeze(tl, [1])), targets, blank)
}

/**
 * Per-sample negative log-likelihood [N] of padded targets [N,S] under log_probs [T,N,C], as a
 * custom op: forward by the alpha recursion, gradient (the exact derivative) by the beta
 * recursion. Both run on the extended labels l' = (blank, l1, blank, l2, ..., blank), K = 2S+1.
 *
 * The lattices are float64 in every call: alpha and beta grow like the loss, and in float32
 * their rounding (some 6e-5 at a loss of 1000) would be as large an error in every posterior,
 * past float32's tolerance once a long sequence's loss passes a few hundred. Only what is
 * exponentiated, differences of at most 0 from the lattice's values, stays in the call's dtype
 * (float64 exponentials cost several times float32's).
 */
function ctcNll (G: Graph, lp: Value, targets: Value, il: Value, tl: Value, blank: Value, zeroInfinity: boolean): Value {
  const wide = <T>(build: () => T): T => G.withFloat('float64', build)
  const near = G.float // the call's dtype, lp's
  return custom([lp], () => wide(() => {
    const negInf = G.constant(-Infinity)
    const ext = extendedLabels(targets, blank) // [N,K]
    const T = dimSize(lp, 0, 'int64')
    const shapeTNK = concat([unsqueeze(T, [0]), shapeOf(ext)], 0)
    const extAt = expandTo(unsqueeze(ext, [0]), shapeTNK, [lp.dims[0], lp.dims[1], 'n']) // [T,N,K]
    const k = arange(dimSize(ext, 1, 'int64'))
    // lp at l'[k]; at frame 0 only l'[0] and l'[1] can be reached, and the rest are -inf whatever
    // lp holds there (-inf + NaN would be NaN), as in PyTorch's alpha
    const firstFrame = unsqueeze(equal(arange(T), G.constant(0, 'int64')), [1, 2]) // [T,1,1]
    const unreached = unsqueeze(less(G.constant(1, 'int64'), k), [0, 1]) // [1,1,K]: k >= 2
    const lpe = where(and(firstFrame, unreached), negInf, cast(G.node('GatherElements', [lp, extAt], { axis: 2 }, lp.dtype, extAt.dims), 'float64'))
    // frame t counts for sample n while t < input_length[n]
    const active = unsqueeze(less(unsqueeze(arange(T), [1]), unsqueeze(il, [0])), [2]) // [T,N,1]
    // the skip s-2 -> s is allowed when l'[s] is a label other than l'[s-2]
    const skip = and(not(equal(ext, blank)), not(equal(ext, shift(ext, 2, 1, blank))))
    // before frame 0, all mass sits on a virtual state that feeds l'[0] and l'[1]
    const start = expandTo(where(equal(k, G.constant(0, 'int64')), 0, negInf), shapeOf(ext), ext.dims)
    const fwd = recursion(G, start, lpe, active, skip, negInf, near, false)
    // alpha at each sample's last frame (held since): log Z = logsumexp(alpha[2L], alpha[2L-1])
    const twoL = mul(tl, G.constant(2, 'int64'))
    const last = G.node('GatherElements', [fwd.last, unsqueeze(twoL, [1])], { axis: 1 }, 'float64', [tl.dims[0], 1])
    const prev = clampMin(sub(twoL, G.constant(1, 'int64')), G.constant(0, 'int64')) // 2L-1, kept in range when L = 0
    const before = G.node('GatherElements', [fwd.last, unsqueeze(prev, [1])], { axis: 1 }, 'float64', [tl.dims[0], 1])
    const beforeOrNone = where(unsqueeze(equal(tl, G.constant(0, 'int64')), [1]), negInf, before)
    const logZ = squeeze(logSumExp([last, beforeOrNone], negInf, near), [1]) // [N]
    const infeasible = equal(logZ, negInf)
    const nll = neg(logZ)
    const value = cast(zeroInfinity ? where(infeasible, 0, nll) : nll, near)
    return { value, saved: { ext, extAt, lpe, active, preAlpha: fwd.pre, logZ, infeasible } }
  }), (g, { ext, extAt, lpe, active, preAlpha, logZ, infeasible }) => {
    const post = wide(() => {
      const negInf = G.constant(-Infinity)
      // beta from each sample's last frame back, without frame t's own emission: then
      // alpha[t,s] + beta[t,s] - log Z is the log-posterior of being in state s at frame t
      const twoL = unsqueeze(mul(tl, G.constant(2, 'int64')), [1])
      const k = unsqueeze(arange(dimSize(ext, 1, 'int64')), [0])
      const end = where(equal(k, twoL), 0, negInf) // [N,K]: the virtual state after l'[2L] and l'[2L-1]
      // backward, the skip s -> s+2 is allowed when l'[s] is a label other than l'[s+2]
      const skipBack = and(not(equal(ext, blank)), not(equal(ext, shift(ext, -2, 1, blank))))
      const preBeta = recursion(G, end, lpe, active, skipBack, negInf, near, true).pre
      const feasible = unsqueeze(not(infeasible), [0, 2]) // [1,N,1]
      const logPost = add(add(preAlpha, lpe), sub(preBeta, unsqueeze(logZ, [0, 2])))
      // a state on no whole path (not reached by frame t, or not reaching the end from it, as in
      // every frame past the input length) has posterior 0 whatever lp holds there (-inf + NaN would be NaN)
      const onPath = and(feasible, not(or(equal(preAlpha, negInf), equal(preBeta, negInf))))
      return exp(cast(where(onPath, logPost, negInf), near))
    })
    const grad = scatterAdd(lp, extAt, mul(post, neg(unsqueeze(g, [0, 2]))), 2)
    const bad = unsqueeze(infeasible, [0, 2])
    return [zeroInfinity ? where(bad, 0, grad) : where(and(bad, active), G.constant(NaN), grad)]
  })
}

/** l' = (blank, l1, blank, l2, ..., lS, blank) of padded targets [N,S]: [N, 2S+1]. */
function extendedLabels (targets: Value, blank: Value): Value {
  const G = targets.graph
  const pairs = concat([unsqueeze(expandAs(blank, targets), [2]), unsqueeze(targets, [2])], 2) // [N,S,2]
  const flat = G.node('Reshape', [pairs, G.constant([0, -1], 'int64')], {}, 'int64', [targets.dims[0], 'n'])
  return G.node('Pad', [flat, G.constant([0, 0, 0, 1], 'int64'), blank], {}, 'int64', [targets.dims[0], 'n'])
}

/**
 * The CTC recursion over frames as one Scan, forward (alpha) or backward (beta, reading the
 * frames from the last): state [N,K] in log space, starting at `init`; per frame
 *   pre[s] = logsumexp(state[s], state[s-1], skip[s] ? state[s-2] : -inf)   (s+1, s+2 backward)
 *   state  = pre + lpe[t]   while the frame is active (t < input_length), else held.
 * Returns `pre` of every frame [T,N,K] (-inf where inactive) and the final state.
 */
function recursion (G: Graph, init: Value, lpe: Value, active: Value, skip: Value, negInf: Value, near: FloatDType, backward: boolean): { pre: Value, last: Value } {
  const step = backward ? -1 : 1
  const res = scan(G, {
    states: [init],
    inputs: [lpe, active],
    reverse: backward,
    body: (b, [state], [emit, on]) => {
      const inf = outer(b, negInf)
      const one = shift(state, step, 1, inf)
      const two = where(outer(b, skip), shift(state, 2 * step, 1, inf), inf)
      const pre = logSumExp([state, one, two], inf, near)
      return { states: [where(on, add(pre, emit), state)], outputs: [where(on, pre, inf)] }
    }
  })
  return { pre: res.outputs[0], last: res.states[0] }
}
