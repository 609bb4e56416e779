import t from 'tap'
import fc from 'fast-check'
import { type FastifyInstance } from 'fastify'
import { LOSSES } from '../../src/losses'
import { type LossDef } from '../../src/losses/loss'
import { build, postLoss } from '../helpers/app'
import { type Flat, type Form, fromForm, mismatch, toForm } from '../helpers/tensors'

/*
 * Property: whatever shapes, broadcasts, dtypes, forms, reductions and option values a batchable
 * loss accepts, a request answered inside a batch gets exactly its solo answer (same status,
 * same shapes, values equal to float rounding). Each run fires a crowd of requests at once at an
 * app that batches (BATCH_MAX_SIZE 64) and the same requests at one that does not; the crowd
 * follows two patterns, so that most of it shares a batch group and the rest probes what groups
 * apart or runs alone.
 * Replay a failure with FC_LOSS=<loss> FC_SEED=<seed> (FC_SHRINK=1 to shrink it); FC_RUNS sets the runs per loss.
 */

const RUNS_PER_LOSS = Number(process.env.FC_RUNS ?? 15)
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED)
const ONLY = process.env.FC_LOSS
const SHRINK = process.env.FC_SHRINK !== undefined
const TOLERANCE = 1e-5

type Body = Record<string, unknown>

/** Draws from fast-check's generator: structure shrinks; element values come from a seeded stream. */
class Draw {
  /** Patterns drawn meanwhile keep every argument at full rank with its rows (they batch). */
  plain = false
  private state: number
  constructor (private readonly g: fc.GeneratorValue) { this.state = g(fc.integer, { min: 1, max: 0x7fffffff }) }
  int (min: number, max: number): number { return this.g(fc.integer, { min, max }) }
  pick<T>(xs: readonly T[]): T { return xs[this.int(0, xs.length - 1)] }
  chance (p: number): boolean { return this.int(0, 99) < p * 100 }
  /** A uniform number in [0, 1) from the value stream (mulberry32). */
  random (): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let x = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }

  /** A value from the stream rounded to 3 decimals, in [lo, hi]. */
  real (lo: number, hi: number): number { return Math.round((lo + this.random() * (hi - lo)) * 1000) / 1000 }
  among<T>(xs: readonly T[]): T { return xs[Math.floor(this.random() * xs.length)] }
}

/** What all members of one pattern share: the kernel's dtype, reduction and grad. */
interface Common { float64: boolean, reduction: string, grad: boolean }

/** Values of one argument, drawn element by element from the value stream. */
type Fill = (d: Draw, i: number) => number

/** One argument of a member: its shape, its values, float or class indices. */
interface ArgSpec { shape: number[], fill: Fill, index?: boolean }

/** A member of the crowd: its arguments, options and, for grad_output, the loss's unreduced shape. */
interface Member { args: Record<string, ArgSpec>, options: Body, lossShape: number[] }

/** A pattern: draws one member after another (rows, values and per-row options vary). */
type Pattern = (d: Draw) => Member

const size = (shape: readonly number[]): number => shape.reduce((n, x) => n * x, 1)

/** PyTorch's broadcast of shapes known to broadcast. */
function broadcast (...shapes: number[][]): number[] {
  const rank = Math.max(0, ...shapes.map(s => s.length))
  return Array.from({ length: rank }, (_, i) => shapes.map(s => s[s.length - rank + i] ?? 1).find(x => x !== 1) ?? 1)
}

/** How an argument sits inside the full shape [N, ...trailing]: its last `rank` dims, some of them 1. */
interface Variant { rank: number, ones: boolean[] }

function variant (d: Draw, fullRank: number, sameRank = false): Variant {
  if (d.plain) return { rank: fullRank, ones: Array.from({ length: fullRank }, (_, i) => i > 0 && d.chance(0.35)) }
  const rank = sameRank || d.chance(0.55) ? fullRank : d.int(0, fullRank)
  // a 1 on the rows' axis broadcasts along them: such members run alone
  return { rank, ones: Array.from({ length: rank }, (_, i) => d.chance(i === 0 && rank === fullRank ? 0.15 : 0.35)) }
}

function shapeIn (v: Variant, full: readonly number[]): number[] {
  return full.slice(full.length - v.rank).map((x, i) => (v.ones[i] ? 1 : x))
}

/** The rank of a pattern's full shape: now and then 0 (no rows: runs alone), else 1 to 3. */
function fullRankOf (d: Draw): number { return d.chance(0.1) ? 0 : d.int(1, 3) }

/** Trailing dims of a pattern: mostly 1 to 3, now and then 0 (an empty tensor). */
function trailingDims (d: Draw, count: number): number[] {
  return Array.from({ length: count }, () => (d.chance(0.04) ? 0 : d.int(1, 3)))
}

/**
 * Rows of a pattern's members: mostly the pattern's own count, which often equals one of its
 * other dims (where a broadcast could take one for the other), else 1 to 3; now and then 0.
 */
function rowCounts (d: Draw, dims: readonly number[]): (m: Draw) => number {
  const nonEmpty = dims.filter(x => x > 0)
  const usual = nonEmpty.length > 0 && d.chance(0.5) ? d.pick(nonEmpty) : d.int(1, 3)
  return m => (m.chance(0.05) ? 0 : m.chance(0.6) ? usual : m.int(1, 3))
}

const real: Fill = d => d.real(-2, 2)
const prob: Fill = d => d.among([0, 1, d.real(0, 1), d.real(0, 1), d.real(0, 1)])
const logProb: Fill = d => d.real(-3, 0)
const sign: Fill = d => d.among([-1, 1])
const positive: Fill = d => d.real(0.01, 3)

/** Elementwise losses over `names` broadcast together as PyTorch does. */
function broadcasting (names: readonly string[], fills: Record<string, Fill>, options: (d: Draw) => Body, sameRank = false): (d: Draw) => Pattern {
  return d => {
    const fullRank = fullRankOf(d)
    const trailing = trailingDims(d, fullRank - 1)
    const variants = names.map(() => variant(d, fullRank, sameRank))
    const rows = rowCounts(d, trailing)
    return m => {
      const full = fullRank === 0 ? [] : [rows(m), ...trailing]
      const args: Record<string, ArgSpec> = {}
      names.forEach((n, i) => { args[n] = { shape: shapeIn(variants[i], full), fill: fills[n] } })
      return { args, options: options(m), lossShape: broadcast(...Object.values(args).map(a => a.shape)) }
    }
  }
}

/** A shared argument's variant; in a plain pattern it stays off the rows (lower rank, or 1 there). */
function sharedVariant (d: Draw, fullRank: number): Variant {
  const v = variant(d, fullRank)
  if (d.plain && v.rank > 0) v.ones[0] = true
  return v
}

/** Losses of same-shaped input and target plus shared per-element arguments (weight, pos_weight). */
function sameShaped (fills: { input: Fill, target: Fill }, shared: readonly string[], options: (d: Draw) => Body): (d: Draw) => Pattern {
  return d => {
    const fullRank = fullRankOf(d)
    const trailing = trailingDims(d, fullRank - 1)
    const sharedVariants = shared.map(() => d.chance(0.5) ? sharedVariant(d, fullRank) : undefined)
    const sharedSeed = d.int(0, 5)
    const rows = rowCounts(d, trailing)
    return m => {
      const full = fullRank === 0 ? [] : [rows(m), ...trailing]
      const args: Record<string, ArgSpec> = { input: { shape: full, fill: fills.input }, target: { shape: full, fill: fills.target } }
      // shared arguments are one value for the whole batch: mostly the pattern's, now and then the member's own
      const seed = m.chance(0.8) ? sharedSeed : m.int(0, 5)
      shared.forEach((n, i) => {
        const v = sharedVariants[i]
        if (v !== undefined) args[n] = { shape: shapeIn(v, full), fill: (_, k) => 0.5 + ((seed + k) % 4) / 2 }
      })
      return { args, options: options(m), lossShape: full }
    }
  }
}

/** Classifiers: input [C], [N,C] or [N,C,d1,...]; class-index targets (or probabilities), per-class weight. */
function classifier (d: Draw, name: 'cross_entropy' | 'nll'): Pattern {
  const rank = d.int(1, 4)
  const classes = d.int(1, 4)
  const extra = trailingDims(d, Math.max(0, rank - 2))
  const probabilities = name === 'cross_entropy' && d.chance(0.3)
  const weighted = d.chance(0.4)
  const smoothing = name === 'cross_entropy' && d.chance(0.4)
  const rows = rowCounts(d, [classes, ...extra])
  return m => {
    const input = rank === 1 ? [classes] : [rows(m), classes, ...extra]
    const samples = input.filter((_, i) => i !== (rank === 1 ? 0 : 1))
    const ignore = m.chance(0.3) ? m.int(0, classes - 1) : -100
    const options: Body = { ...(ignore !== -100 && (!probabilities || m.chance(0.2)) ? { ignore_index: ignore } : {}) }
    if (smoothing) options.label_smoothing = m.pick([0.1, 0.25, 0.9])
    const outOfRange = m.chance(0.03)
    const args: Record<string, ArgSpec> = {
      input: { shape: input, fill: name === 'nll' ? logProb : real },
      target: probabilities
        ? { shape: input, fill: prob }
        : { shape: samples, index: true, fill: (v, i) => (outOfRange && i === 0 ? classes : Math.floor(v.random() * classes)) }
    }
    if (weighted) args.weight = { shape: [classes], fill: (_, k) => [1, 2, 0.5, 0][k % 4] }
    return { args, options, lossShape: samples }
  }
}

/** Pairs of vectors: input1 and input2 [N,D] (or [D]), one target per pair. */
function vectorPairs (targetFill: Fill, options: (d: Draw) => Body): (d: Draw) => Pattern {
  return d => {
    const batched = d.chance(0.85)
    const dim = d.chance(0.05) ? 0 : d.int(1, 4)
    const rows = rowCounts(d, [dim])
    return m => {
      const n = rows(m)
      const vectors = batched ? [n, dim] : [dim]
      const zeroRow = m.chance(0.2) ? 0 : -1
      const vec: Fill = (v, i) => (dim > 0 && Math.floor(i / dim) === zeroRow ? 0 : v.real(-2, 2))
      return {
        args: { input1: { shape: vectors, fill: vec }, input2: { shape: vectors, fill: real }, target: { shape: batched ? [n] : [], fill: targetFill } },
        options: options(m),
        lossShape: batched ? [n] : []
      }
    }
  }
}

/** gaussian_nll: input and target broadcast; var is the input's shape, or it without its last dim, or that with a trailing 1. */
function gaussian (d: Draw): Pattern {
  const fullRank = fullRankOf(d)
  const trailing = trailingDims(d, fullRank - 1)
  const input = variant(d, fullRank)
  const target = variant(d, fullRank)
  const varForm = input.rank === 0 ? 'same' : d.pick(['same', 'lead', 'lead1'] as const)
  const full = d.chance(0.3)
  const rows = rowCounts(d, trailing)
  return m => {
    const shape = fullRank === 0 ? [] : [rows(m), ...trailing]
    const inputShape = shapeIn(input, shape)
    const lead = inputShape.slice(0, -1)
    const varShape = varForm === 'same' ? inputShape : varForm === 'lead' ? lead : [...lead, 1]
    return {
      args: {
        input: { shape: inputShape, fill: real },
        target: { shape: shapeIn(target, shape), fill: real },
        var: { shape: varShape, fill: v => (v.random() < 0.1 ? 0 : v.real(0.01, 3)) }
      },
      options: { full, eps: m.pick([1e-6, 0.1]) },
      lossShape: broadcast(inputShape, shapeIn(target, shape))
    }
  }
}

/** Targets of hinge, squared_hinge and perceptron: all in {-1, 1} or all in {0, 1}; now and then a mix (rejected). */
function hingeTargets (d: Draw): Fill {
  const zeroOne = d.chance(0.4)
  const mixed = d.chance(0.03)
  return (v, i) => (mixed && i < 2 ? [-1, 0][i] : zeroOne ? v.among([0, 1]) : v.among([-1, 1]))
}

const none = (): Body => ({})

/** A pattern maker for every batchable loss; the test fails for a batchable loss without one. */
const PATTERNS: Record<string, (d: Draw) => Pattern> = {
  mse: broadcasting(['input', 'target'], { input: real, target: real }, none),
  l1: broadcasting(['input', 'target'], { input: real, target: real }, none),
  log_cosh: broadcasting(['input', 'target'], { input: real, target: real }, none),
  smooth_l1: broadcasting(['input', 'target'], { input: real, target: real }, m => ({ beta: m.pick([0, 0.25, 1, 2]) })),
  huber: broadcasting(['input', 'target'], { input: real, target: real }, m => ({ delta: m.pick([0.3, 1, 2]) })),
  poisson_nll: d => {
    const logInput = d.chance(0.6)
    const full = d.chance(0.4)
    return broadcasting(['input', 'target'], { input: logInput ? real : positive, target: v => Math.floor(v.random() * 5) },
      m => ({ log_input: logInput, full, eps: m.pick([1e-8, 0.1, 0.5]) }))(d)
  },
  gaussian_nll: gaussian,
  kl_div: d => {
    const logTarget = d.chance(0.4)
    return broadcasting(['input', 'target'], { input: logProb, target: logTarget ? logProb : prob }, () => ({ log_target: logTarget }))(d)
  },
  soft_margin: broadcasting(['input', 'target'], { input: real, target: v => v.among([-1, 1, v.real(-2, 2)]) }, none),
  hinge: d => broadcasting(['input', 'target'], { input: real, target: hingeTargets(d) }, none)(d),
  squared_hinge: d => broadcasting(['input', 'target'], { input: real, target: hingeTargets(d) }, none)(d),
  perceptron: d => broadcasting(['input', 'target'], { input: real, target: hingeTargets(d) }, none)(d),
  hinge_embedding: broadcasting(['input', 'target'], { input: real, target: sign }, m => ({ margin: m.pick([0.5, 1, 2]) })),
  // PyTorch wants one rank for all three; now and then another (rejected alike)
  margin_ranking: d => broadcasting(['input1', 'input2', 'target'], { input1: real, input2: real, target: sign },
    m => ({ margin: m.pick([0, 0.1, 0.5]) }), !d.chance(0.1))(d),
  bce: sameShaped({ input: prob, target: prob }, ['weight'], none),
  bce_with_logits: sameShaped({ input: real, target: prob }, ['weight', 'pos_weight'], none),
  sigmoid_focal: sameShaped({ input: real, target: prob }, [], m => ({ alpha: m.pick([-1, 0.25, 0.6]), gamma: m.pick([0, 1.5, 2]) })),
  cross_entropy: d => classifier(d, 'cross_entropy'),
  nll: d => classifier(d, 'nll'),
  cosine_embedding: vectorPairs(sign, m => ({ margin: m.pick([0, 0.5]) })),
  cosine_similarity: vectorPairs(v => v.among([-1, 0.5, 1, v.real(-1, 1)]), m => ({ eps: m.pick([1e-8, 0.1]) }))
}

/** A tensor of the member in some API form: nested arrays (float32, int64), typed flat or base64. */
function encode (d: Draw, a: ArgSpec, float64: boolean): unknown {
  const data = Array.from({ length: size(a.shape) }, (_, i) => a.fill(d, i))
  // nested arrays cannot say a shape with an empty dim, nor a float64
  const nestable = !a.shape.includes(0) && (a.index === true || !float64)
  const form: Form = nestable ? d.pick(['nested', 'flat', 'base64'] as const) : d.pick(['flat', 'base64'] as const)
  const dtype: Flat['dtype'] = a.index === true ? d.pick(['int32', 'int64'] as const) : float64 ? 'float64' : 'float32'
  return toForm({ dtype, shape: a.shape, data }, form)
}

/** A member's request body. */
function bodyOf (d: Draw, c: Common, m: Member): Body {
  const body: Body = { reduction: c.reduction, grad: c.grad, ...m.options }
  let wide = c.float64
  for (const [name, a] of Object.entries(m.args)) {
    body[name] = encode(d, a, wide)
    // float64 calls: the first float argument makes them so; the others may come as float32
    if (a.index !== true && wide && d.chance(0.3)) wide = false
  }
  if (c.grad && d.chance(0.3)) {
    const shape = c.reduction === 'none' ? m.lossShape : []
    body.grad_output = encode(d, { shape, fill: v => v.real(-1, 1) }, c.float64)
  }
  return body
}

/** A crowd of requests: two patterns, most members following the first (mostly one whose members batch). */
function crowd (d: Draw, def: LossDef): Body[] {
  const makers = [0, 1].map(i => {
    const common: Common = { float64: d.chance(0.3), reduction: d.pick(def.reductions), grad: d.chance(0.6) }
    d.plain = i === 0 && d.chance(0.6)
    const pattern = PATTERNS[def.name](d)
    d.plain = false
    return { common, pattern }
  })
  const count = d.int(8, 20)
  return Array.from({ length: count }, () => {
    const { common, pattern } = makers[d.chance(0.75) ? 0 : 1]
    return bodyOf(d, common, pattern(d))
  })
}

/** Why the batched answer differs from the solo one, or undefined when it does not. */
function difference (got: { status: number, body: any }, want: { status: number, body: any }): string | undefined {
  if (got.status !== want.status) return `status ${got.status}, solo ${want.status} (${JSON.stringify(want.body)})`
  if (want.status !== 200) {
    return got.body.code === want.body.code && got.body.message === want.body.message ? undefined : `error ${JSON.stringify(got.body)}, solo ${JSON.stringify(want.body)}`
  }
  const tensors = (b: any): Record<string, unknown> => ({ loss: b.loss, ...Object.fromEntries(Object.entries(b.grad ?? {}).map(([k, v]) => [`grad.${k}`, v])) })
  const g = tensors(got.body)
  const w = tensors(want.body)
  if (Object.keys(g).sort().join() !== Object.keys(w).sort().join()) return `outputs ${Object.keys(g).join()}, solo ${Object.keys(w).join()}`
  for (const k of Object.keys(w)) {
    const a = fromForm(g[k])
    const b = fromForm(w[k])
    if (a.shape.join() !== b.shape.join()) return `${k}: shape [${a.shape.join()}], solo [${b.shape.join()}]`
    const why = mismatch(a.data, b.data, TOLERANCE, TOLERANCE)
    if (why !== undefined) return `${k}: ${why}`
  }
  return undefined
}

/** Kernel runs that held several requests so far. */
function multiRuns (app: FastifyInstance): number {
  return [...app.losshub.batcher.stats.sizes.entries()].filter(([n]) => n > 1).reduce((s, [, runs]) => s + runs, 0)
}

t.test('every batchable loss has a request generator', async t => {
  const batchable = LOSSES.filter(def => def.batch !== undefined).map(def => def.name)
  t.ok(batchable.length > 0)
  t.same(batchable.filter(n => PATTERNS[n] === undefined), [], 'batchable losses without a generator')
})

t.test('a request answered in a batch gets its solo answer, for every batchable loss', async t => {
  // no load shedding nor deadlines: on a busy machine they would answer 503/504 to one app only
  const steady = { maxEventLoopDelayMs: 0, requestTimeoutMs: 0 }
  // a 10 ms window lets a crowd queue up behind its first request and batch
  const batched = await build(t, { ...steady, batchMaxSize: 64, batchMaxDelayUs: 10000 })
  const solo = await build(t, { ...steady, batchMaxSize: 1 })
  for (const def of LOSSES.filter(d => d.batch !== undefined && PATTERNS[d.name] !== undefined && (ONLY === undefined || d.name === ONLY))) {
    const before = multiRuns(batched)
    const out = await fc.check(fc.asyncProperty(fc.gen(), async g => {
      const bodies = crowd(new Draw(g), def)
      const ran = batched.losshub.batcher.stats.requests
      const got = await Promise.all(bodies.map(async b => await postLoss(batched, def.name, b)))
      const want = await Promise.all(bodies.map(async b => await postLoss(solo, def.name, b)))
      bodies.forEach((b, i) => {
        const why = difference(got[i], want[i])
        if (why !== undefined) throw new Error(`${def.name} ${JSON.stringify(b)}: ${why}`)
      })
      // a batch whose kernel fails is retried member by member: its members count twice
      const answered = got.filter(r => r.status === 200).length
      const counted = batched.losshub.batcher.stats.requests - ran
      if (counted !== answered) throw new Error(`${def.name}: ${counted} requests ran for ${answered} answers: a batch failed (${JSON.stringify(bodies)})`)
    }), { numRuns: RUNS_PER_LOSS, seed: SEED, endOnFailure: !SHRINK })
    if (out.failed) t.fail(`${String(out.errorInstance)}\n(FC_LOSS=${def.name} FC_SEED=${out.seed}; ${fc.defaultReportMessage(out) ?? ''})`)
    else t.pass(`${def.name}: ${RUNS_PER_LOSS} crowds`)
    t.ok(multiRuns(batched) > before, `${def.name}: some kernel runs held several requests`, { runsBySize: [...batched.losshub.batcher.stats.sizes.entries()] })
  }
})
