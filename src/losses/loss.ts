import { type TInteger, type TNumber, type TProperties, type Static, type TObject, Type, Kind } from '@sinclair/typebox'
import { type Graph, type Value } from '../onnx/graph'
import { type HostTensor } from '../tensor/tensor'

/** Reductions of the API; each loss says which it accepts. */
export type Reduction = 'none' | 'mean' | 'sum' | 'batchmean'

/** How an argument's elements are typed: floats, class indices, or decided by the request. */
export type ArgKind = 'float' | 'index' | 'float-or-index'

/** One tensor argument of a loss. */
export interface ArgDecl {
  name: string
  kind: ArgKind
  /** Absent from the request is allowed (e.g. `weight`). */
  optional?: boolean
  /** Gradients are returned for it when `grad: true` (the catalog's "grad w.r.t."). */
  grad?: boolean
  /**
   * A float argument that takes int32/int64 tensors too, as floats, where PyTorch takes them
   * (labels and counts: torch.tensor([1, -1]) is int64): their values become float32, as
   * nested numbers do, and a float64 argument beside them still makes the computation float64.
   */
  integers?: boolean
  /**
   * For a 'float-or-index' argument: whether nested arrays (which carry no dtype) hold floats
   * whatever their shape, given the request's options. Without it, nested arrays shaped like
   * the first argument hold floats and any others class indices.
   */
  nestedFloats?: (options: Record<string, unknown>) => boolean
  doc: string
}

/** A decoded argument as a loss's `check` sees it: kind resolved, shape known. */
export interface Arg extends HostTensor { kind: 'float' | 'index' }

/** The request's options, typed from the loss's schema, plus the common ones. */
export type Options<P extends TProperties> = Static<TObject<P>> & { reduction: Reduction }

/**
 * The options `forward` is given: the structural ones (every option but the numeric ones)
 * and the reduction. A numeric option is a graph input, read from `x`, never a value the
 * build could bake into a cached session; a union of a number and keywords (balanced_bce's
 * alpha) keeps its keyword here, and is absent when the request gave a number.
 */
export type StructuralOptions<P extends TProperties> = {
  [K in keyof P as P[K] extends TNumber | TInteger ? never : K]: number extends Static<P[K]> ? Exclude<Static<P[K]>, number> | undefined : Static<P[K]>
} & { reduction: Reduction }

/** Graph inputs of a kernel: tensor arguments and the numeric options, by name. */
export type Inputs = Record<string, Value>

/**
 * One loss, declared once: its schema (arguments and options), its checks and its forward
 * graph. Numeric options (TypeBox Number/Integer) become graph inputs, so a new value needs
 * no new session; every other option is structural and part of the kernel's key. `D` holds
 * what the loss derives from its numeric options for the build (see `structural`).
 */
export interface LossDef<P extends TProperties = TProperties, D extends object = object> {
  name: string
  summary: string
  /** The ground truth for values and gradients. */
  reference: string
  category: 'regression' | 'classification' | 'ranking' | 'sequence' | 'segmentation'
  /**
   * Where losshub follows one reading of the reference over another, or refuses what it would
   * accept: one Markdown sentence or two each, for docs/losses.md.
   */
  notes?: readonly string[]
  args: ArgDecl[]
  options: P
  reductions: readonly Reduction[]
  /**
   * Arguments that share the batch dimension (axis 0) with the loss, so that requests can be
   * concatenated along it and reduced per request (src/batching). Absent: the loss runs each
   * request alone (it reduces over the whole request, or over time, in ways rows cannot split).
   */
  batch?: readonly string[]
  /**
   * Lets a batch mix numeric option values, each row getting its own request's value:
   * `elementwise`, the loss uses its options only elementwise against the batch arguments (the
   * option arrives as [rows,1,...]); `rows`, it places them itself with `rowValue` (as [rows]).
   * Absent: only requests with equal option values batch together.
   */
  perRowOptions?: 'elementwise' | 'rows'
  /**
   * Batch arguments whose rows the loss lines up with the first batch argument's itself (e.g.
   * class-index targets [N] against input [N,C]), so they may have another rank. Every other
   * batch argument must have the first one's rank: a lower-rank argument would broadcast from
   * the right, along the rows of the whole batch.
   */
  rowAligned?: readonly string[]
  /**
   * Outputs besides `loss` that a batched kernel gives one value per request (split per request
   * like a reduced loss, not by rows): a composite's term values. Absent: none.
   */
  requestOutputs?: readonly string[]
  /** A request body that works: the catalog's and OpenAPI's example, and the start-up warm-up. */
  example: Record<string, unknown>
  /**
   * Checks shapes, index ranges and domains (throwing coded errors that name the argument)
   * and returns the shape of the unreduced loss (as with reduction "none"); preparation
   * derives the returned shape from it (src/kernels/prepare.ts).
   */
  check: (args: Record<string, Arg>, opts: Options<P>) => number[]
  /**
   * The loss's intermediates that can outgrow its arguments, in elements, by what they are
   * (e.g. `{ 'the broadcast of input, target': n }`, a one-hot, CTC's lattice). Arguments, the
   * loss and the gradients are counted for every loss (src/kernels/admission.ts).
   */
  workspace?: (args: Record<string, Arg>, opts: Options<P>) => Record<string, number>
  /** Sequential steps of the graph (a Scan's iterations); absent: 1. */
  steps?: (args: Record<string, Arg>, opts: Options<P>) => number
  /**
   * Builds the loss, reduced as `opts.reduction` asks, from graph inputs (numeric options
   * among them). It is given only what is part of the kernel's key: the structural options
   * and what `structural` derives.
   */
  forward: (g: Graph, x: Inputs, opts: StructuralOptions<P> & D) => Value
  /**
   * What the build needs to know of the numeric options' values (e.g. whether label_smoothing
   * is > 0, which adds a term): given to `forward` beside the structural options, and so part
   * of the kernel's key. Absent: nothing.
   */
  structural?: (opts: Options<P>) => D
}

/** Declares a loss (keeps the options' static type flowing into check/forward). */
export function defineLoss<P extends TProperties, D extends object = Record<never, never>> (def: LossDef<P, D>): LossDef<P, D> { return def }

/** The reductions most losses accept. */
export const STANDARD_REDUCTIONS: readonly Reduction[] = ['none', 'mean', 'sum']

/**
 * Whether an option's schema makes it a numeric graph input, and of which kind. A union of one
 * number with string keywords (balanced_bce's alpha: "auto" or a number) is one when the request
 * gives a number; a keyword given instead is a structural option.
 */
export function numericKind (schema: unknown): 'float' | 'int64' | undefined {
  const s = schema as { [Kind]?: string, anyOf?: Array<{ type?: unknown }> }
  if (s[Kind] === 'Union' && s.anyOf !== undefined) {
    const kinds = s.anyOf.map(numericKind).filter(k => k !== undefined)
    return kinds.length === 1 && s.anyOf.every(m => numericKind(m) !== undefined || m.type === 'string') ? kinds[0] : undefined
  }
  return s[Kind] === 'Number' ? 'float' : s[Kind] === 'Integer' ? 'int64' : undefined
}

/**
 * The options `forward` is given for `opts` (see StructuralOptions): every option but those
 * whose value is a number fed as a graph input (or absent), the reduction, and what the loss's
 * `structural` derives. Everything that shapes the graph, and so the kernel's key.
 */
export function structuralOptions (def: LossDef, opts: Options<TProperties>): StructuralOptions<TProperties> {
  const structural: StructuralOptions<TProperties> = { reduction: opts.reduction }
  for (const [name, schema] of Object.entries(def.options)) {
    const value = opts[name]
    if (numericKind(schema) !== undefined && (typeof value === 'number' || value === undefined)) continue
    structural[name] = value
  }
  return { ...structural, ...def.structural?.(opts) }
}

/** Re-export for loss files: one import for schemas. */
export { Type }
