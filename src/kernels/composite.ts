import { DecodedTensor } from '../tensor/tensor'
import { TENSOR_NAME } from '../../schemas/composite'
import { fail, LosshubError } from '../errors'
import { type Arg, type ArgDecl, type Inputs, type LossDef, structuralOptions } from '../losses/loss'
import { type FloatDType, type Graph, type Value } from '../onnx/graph'
import { add, mul } from '../onnx/ops'
import { type TensorForm } from '../tensor/tensor'
import { RESERVED_KEYS, reservedKey, type TensorMemory } from '../tensor/json-reader'
import { kernelKey } from './kernel'
import { batchPlan, rowsOf } from './batch'
import { type Cost, type PreparedCall, prepare } from './prepare'
import { DEFAULT_LIMITS, type Limits } from './admission'

/** One term of a `POST /losses` body (schema-checked: schemas/composite.ts). */
export interface CompositeTermBody { loss: string, weight?: number, args: Record<string, string>, options?: Record<string, unknown>, name?: string }

/** A `POST /losses` body, schema-checked against CompositeRequest. */
export interface CompositeBody { tensors: Record<string, unknown>, terms: CompositeTermBody[], grad?: boolean }

/**
 * Checks a term's options against its loss's schema (schemas/composite.ts `termOptionsSchema`),
 * fills in the defaults and returns them; throws a coded error naming the option at fault.
 */
export type OptionsValidator = (def: LossDef, options: Record<string, unknown>) => Record<string, unknown>

/** What preparing a composite needs: the served losses, the options validator, the admission limit. */
export interface CompositeEnv {
  losses: ReadonlyMap<string, LossDef>
  validateOptions: OptionsValidator
  /** What one request may cost (DEFAULT_LIMITS when absent): the terms together, too. */
  limits?: Limits
  /** The request's memory for the tensors' conversions to the kernel's dtype (see PreparedCall). */
  memory?: TensorMemory
}

/** A term, prepared: its own call (checked as `POST /loss/{name}` would be) and its place in the kernel. */
export interface PreparedTerm {
  loss: string
  name?: string
  weight: number
  call: PreparedCall
  /** Each argument's graph input, and whether the loss differentiates it. */
  bindings: Array<{ arg: string, input: string, grad: boolean }>
}

/** A validated composite: the kernel call the batcher runs, and how to read its outputs. */
export interface CompositeCall {
  /**
   * One PreparedCall for the whole composite, so that the batcher and the kernel builder take
   * it as they take a single loss: its `def` declares the graph inputs (one per tensor and
   * kind) and its forward composes the terms' forwards into the weighted total. It batches
   * with composites of the same structure, weights and option values when every term would
   * batch alone (`batchInputs`); its term values are then one per request (`requestOutputs`).
   */
  call: PreparedCall
  terms: PreparedTerm[]
  /** The tensors that get a gradient, in the order of `tensors`, with their graph inputs. */
  grads: Array<{ tensor: string, input: string }>
}

/** The graph output holding term `i`'s value. */
export const termOutput = (i: number): string => `term${i}`

/**
 * Validates a composite body and prepares its kernel call. Each term goes through `prepare`
 * on a body made of its bound tensors and its options, so it meets the schemas, checks and
 * MAX_ELEMENTS admission of `POST /loss/{name}`; its errors are prefixed `terms[i] (name): `.
 */
export function prepareComposite (body: CompositeBody, env: CompositeEnv): CompositeCall {
  const names = Object.keys(body.tensors)
  for (const n of names) {
    // the body reader refuses these as it reads them; V2's inputs name tensors in strings
    if (RESERVED_KEYS.has(n)) throw reservedKey(`tensors.${n}`)
    if (!TENSOR_NAME.test(n)) fail('INVALID_REQUEST', `tensors: ${JSON.stringify(n)} is not a tensor name: names are identifiers ([A-Za-z_][A-Za-z0-9_]*)`)
  }
  const bound = body.terms.map((term, i) => inTerm(term, i, () => bind(term, env.losses, names)))
  const used = new Set(bound.flatMap(b => Object.values(b.tensorOf)))
  for (const n of names) if (!used.has(n)) fail('INVALID_REQUEST', `tensors.${n}: no term uses it; bind it to a term's argument or leave it out`)

  const inputs = new Map<string, GraphInput>() // by `${tensor}:${kind}`
  const terms = body.terms.map((term, i) => inTerm(term, i, () => {
    const { def, tensorOf } = bound[i]
    const options = env.validateOptions(def, { ...term.options })
    const weight = term.weight ?? 1
    if (options.reduction === 'none' && weight !== 0) {
      fail('INVALID_OPTION', `weight: a term with reduction "none" has a tensor value, which cannot join the total; give it weight 0 (its value is still returned), or reduction "mean" or "sum" (weight is ${weight})`)
    }
    const callBody: Record<string, unknown> = { ...options }
    for (const [arg, tensor] of Object.entries(tensorOf)) callBody[arg] = body.tensors[tensor]
    const call = prepare(def, callBody, env.limits, env.memory)
    // later terms take these decoded tensors as they are (decodeTensor passes them through)
    for (const [arg, tensor] of Object.entries(tensorOf)) {
      const a = call.args[arg]
      if (!(body.tensors[tensor] instanceof DecodedTensor)) body.tensors[tensor] = new DecodedTensor(a.dtype, a.shape, a.data, a.form)
    }
    const bindings = Object.entries(tensorOf).map(([arg, tensor]) => {
      const a = call.args[arg]
      const grad = def.args.find(d => d.name === arg)?.grad === true
      const key = `${tensor}:${a.kind}`
      const position = names.indexOf(tensor)
      const input = inputs.get(key) ?? { tensor, position, name: inputName(position, a.kind), arg: a, grad: false }
      input.grad ||= grad
      inputs.set(key, input)
      return { arg, input: input.name, grad }
    })
    const t: PreparedTerm = { loss: term.loss, weight, call, bindings }
    if (term.name !== undefined) t.name = term.name
    return t
  }))
  // graph inputs in the order of `tensors` (floats before indices): the kernel key depends on
  // the structure of the request, not on the order its terms were read in
  const ordered = [...inputs.values()].sort((a, b) => a.position - b.position || (a.arg.kind === 'float' ? -1 : 1))
  // every tensor is used, so the first graph input is the first tensor: it sets the reply's form
  const call = kernelCall(terms, ordered, body.grad === true, ordered[0].arg.form, env.memory)
  admitTerms(terms, call.cost.elements, (env.limits ?? DEFAULT_LIMITS).maxElements)
  return { call, terms, grads: ordered.filter(i => i.grad).map(i => ({ tensor: i.tensor, input: i.name })) }
}

/**
 * Refuses a composite whose terms together (`total`, the composite call's elements) cost more
 * than one request may (MAX_ELEMENTS):
 * each term passed alone, but their graphs run as one, so 16 terms at the limit would
 * otherwise take 16 times the memory of one request.
 */
function admitTerms (terms: PreparedTerm[], total: number, maxElements: number): void {
  if (total > maxElements) {
    fail('TOO_LARGE', `terms: together need ${total} elements (${terms.map((t, i) => `terms[${i}] ${t.call.cost.elements}`).join(', ')}: each term's largest tensor), more than the ${maxElements} one request may use (MAX_ELEMENTS); split the composite`)
  }
}

/** A graph input: one tensor as one kind (a tensor used both as floats and as class indices is fed twice). */
interface GraphInput { tensor: string, position: number, name: string, arg: Arg, grad: boolean }

/** Graph input names depend on a tensor's position only, so renaming tensors keeps the kernel. */
function inputName (position: number, kind: Arg['kind']): string {
  return kind === 'float' ? `t${position}` : `t${position}:index`
}

/** Runs `work` for term `i`, prefixing its coded errors with the term's place and name. */
function inTerm<T> (term: CompositeTermBody, i: number, work: () => T): T {
  try {
    return work()
  } catch (err) {
    if (err instanceof LosshubError) throw new LosshubError(err.code, `terms[${i}] (${term.name ?? term.loss}): ${err.message}`, err.retryAfterSeconds)
    throw err
  }
}

/** A term's loss and, per argument, the tensor it is bound to. */
function bind (term: CompositeTermBody, losses: ReadonlyMap<string, LossDef>, names: readonly string[]): { def: LossDef, tensorOf: Record<string, string> } {
  const def = losses.get(term.loss) ?? fail('UNKNOWN_LOSS', `loss '${term.loss}' is not served; known losses: ${[...losses.keys()].join(', ')}`)
  const tensorOf: Record<string, string> = {}
  for (const [arg, tensor] of Object.entries(term.args)) {
    if (!def.args.some(d => d.name === arg)) fail('INVALID_REQUEST', `args.${arg}: ${def.name} has no argument '${arg}' (its arguments: ${def.args.map(d => d.name).join(', ')})`)
    if (!names.includes(tensor)) fail('INVALID_REQUEST', `args.${arg}: no tensor named '${tensor}' (tensors: ${names.join(', ')})`)
    tensorOf[arg] = tensor
  }
  for (const d of def.args) {
    if (d.optional !== true && tensorOf[d.name] === undefined) fail('INVALID_REQUEST', `args.${d.name}: required argument is missing; bind it to one of the tensors (${names.join(', ')})`)
  }
  return { def, tensorOf }
}

/** The graph input of a numeric option (or weight) of term `i`: prefixed, so that terms never collide. */
const optionInput = (i: number, name: string): string => `term${i}/${name}`

/** The composite's PreparedCall: a LossDef made for this request, whose forward is the weighted total. */
function kernelCall (terms: PreparedTerm[], inputs: GraphInput[], grad: boolean, form: TensorForm, memory: TensorMemory | undefined): PreparedCall {
  const args: Record<string, Arg> = {}
  const decls: ArgDecl[] = []
  for (const i of inputs) {
    args[i.name] = i.arg
    decls.push({ name: i.name, kind: i.arg.kind, grad: i.grad, doc: `tensors.${i.tensor}` })
  }
  const numeric: PreparedCall['numeric'] = {}
  terms.forEach((t, i) => {
    for (const [name, p] of Object.entries(t.call.numeric)) numeric[optionInput(i, name)] = p
    if (t.weight !== 0) numeric[optionInput(i, 'weight')] = { kind: 'float', value: t.weight }
  })
  const dtype: FloatDType = inputs.some(i => i.arg.dtype === 'float64') ? 'float64' : 'float32'
  // everything that shapes the graph beyond the inputs' kinds and dims: each term's own kernel
  // key (loss, reduction, structural options), its bindings, and whether it joins the total
  const structure = terms.map(t => [kernelKey(t.call), t.bindings.map(b => `${b.arg}=${b.input}${b.grad ? '' : ' (no grad)'}`), t.weight !== 0])
  // what the kernel builder reads of it: name, args, structural and forward; it is never in the catalog
  const def: LossDef = {
    name: 'composite',
    summary: 'The weighted sum of several losses over shared tensors.',
    reference: 'the references of its terms',
    category: terms[0].call.def.category,
    args: decls,
    options: {},
    reductions: ['sum'],
    example: {},
    check: () => [],
    structural: () => ({ terms: structure }),
    forward: (G, x) => weightedTotal(G, x, terms)
  }
  const batch = batchInputs(terms, inputs)
  if (batch !== undefined) {
    // each term keeps its rows apart on its own (batchPlan), so the composite does too: its
    // batch inputs may have any rank, as each term lines up its own arguments
    def.batch = batch
    def.rowAligned = batch
    def.requestOutputs = terms.map((_, i) => termOutput(i))
  }
  const cost: Cost = {
    // each term's graph lives beside the others' (its gradients need its intermediates)
    elements: terms.reduce((n, t) => n + t.call.cost.elements, 0),
    steps: terms.reduce((n, t) => n + t.call.cost.steps, 0),
    bytes: inputs.reduce((n, i) => n + i.arg.data.byteLength, 0)
  }
  const opts = { reduction: 'sum' } as PreparedCall['opts']
  // batched, the total is one value per request: its rows are the requests' rows
  const unreducedShape = batch === undefined ? [] : [rowsOf(terms[0].call)]
  return { def, opts, structural: structuralOptions(def, opts), dtype, args, numeric, grad, lossShape: [], unreducedShape, form, cost, memory }
}

/**
 * The graph inputs a composite batches along axis 0, first the one whose rows lead; undefined
 * when it must run alone. It batches when every term would batch alone (each keeps its rows
 * apart: batchPlan), reduces to one value (a `none` term has rows of its own), and has the same
 * rows, and when every tensor is either a batch argument in every term that uses it or in none.
 */
function batchInputs (terms: readonly PreparedTerm[], inputs: readonly GraphInput[]): string[] | undefined {
  const rows = rowsOf(terms[0].call)
  const batched = new Set<string>()
  const shared = new Set<string>()
  for (const t of terms) {
    if (t.call.opts.reduction === 'none' || batchPlan(t.call) === undefined || rowsOf(t.call) !== rows) return undefined
    for (const b of t.bindings) (t.call.def.batch?.includes(b.arg) === true ? batched : shared).add(b.input)
  }
  if ([...batched].some(name => shared.has(name))) return undefined
  // the rows come from the first term's leading batch argument
  const lead = terms[0].bindings.find(b => b.arg === terms[0].call.def.batch?.[0])?.input
  if (lead === undefined) return undefined
  return [lead, ...inputs.map(i => i.name).filter(name => name !== lead && batched.has(name))]
}

/**
 * Builds every term's forward over the shared graph inputs, outputs each term's value, and
 * returns the weighted total of the terms of non-zero weight (the loss the gradient is taken
 * of: a tensor used by several terms gets the sum of their gradients from `backward`). An
 * argument the loss does not differentiate (a target) sees its tensor through an untracked
 * Identity, so that no gradient reaches the tensor from it.
 */
function weightedTotal (G: Graph, x: Inputs, terms: readonly PreparedTerm[]): Value {
  const untracked = new Map<string, Value>()
  const detached = (name: string): Value => {
    const v = x[name]
    if (!v.tracked) return v
    let d = untracked.get(name)
    if (d === undefined) {
      d = G.untracked(() => G.node('Identity', [v], {}, v.dtype, v.dims))
      untracked.set(name, d)
    }
    return d
  }
  let total: Value | undefined
  terms.forEach((t, i) => {
    const tx: Inputs = {}
    for (const b of t.bindings) tx[b.arg] = b.grad ? x[b.input] : detached(b.input)
    for (const name of Object.keys(t.call.numeric)) tx[name] = x[optionInput(i, name)]
    const value = t.call.def.forward(G, tx, t.call.structural)
    G.output(termOutput(i), value)
    if (t.weight === 0) return
    const weighted = mul(value, x[optionInput(i, 'weight')])
    total = total === undefined ? weighted : add(total, weighted)
  })
  return total ?? G.constant(0)
}
