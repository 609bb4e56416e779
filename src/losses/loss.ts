import { type TProperties, type Static, type TObject, Type, Kind } from '@sinclair/typebox'
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
  doc: string
}

/** A decoded argument as a loss's `check` sees it: kind resolved, shape known. */
export interface Arg extends HostTensor { kind: 'float' | 'index' }

/** The request's options, typed from the loss's schema, plus the common ones. */
export type Options<P extends TProperties> = Static<TObject<P>> & { reduction: Reduction }

/** Graph inputs of a kernel: tensor arguments and the numeric options, by name. */
export type Inputs = Record<string, Value>

/**
 * One loss, declared once: its schema (arguments and options), its checks and its forward
 * graph. Numeric options (TypeBox Number/Integer) become graph inputs, so a new value needs
 * no new session; every other option is structural and part of the kernel's key.
 */
export interface LossDef<P extends TProperties = TProperties> {
  name: string
  summary: string
  /** The ground truth for values and gradients. */
  reference: string
  category: 'regression' | 'classification' | 'ranking' | 'sequence' | 'segmentation'
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
  /** A request body that works: the catalog's and OpenAPI's example, and the start-up warm-up. */
  example: Record<string, unknown>
  /**
   * Checks shapes, index ranges and domains (throwing coded errors that name the argument)
   * and returns the shape of the loss as it will be returned.
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
  /** Builds the loss, reduced as `opts.reduction` asks, from graph inputs. */
  forward: (g: Graph, x: Inputs, opts: Options<P>) => Value
  /** Overrides the kernel-key part of the options (default: every non-numeric option). */
  structural?: (opts: Options<P>) => unknown
}

/** Declares a loss (keeps the options' static type flowing into check/forward). */
export function defineLoss<P extends TProperties> (def: LossDef<P>): LossDef<P> { return def }

/** The reductions most losses accept. */
export const STANDARD_REDUCTIONS: readonly Reduction[] = ['none', 'mean', 'sum']

/**
 * Whether an option's schema makes it a numeric graph input, and of which kind. A union of one
 * number with string keywords (balanced_bce's alpha: "auto" or a number) is one when the request
 * gives a number; such a loss's `structural` must then say which member was given.
 */
export function numericKind (schema: unknown): 'float' | 'int64' | undefined {
  const s = schema as { [Kind]?: string, anyOf?: Array<{ type?: unknown }> }
  if (s[Kind] === 'Union' && s.anyOf !== undefined) {
    const kinds = s.anyOf.map(numericKind).filter(k => k !== undefined)
    return kinds.length === 1 && s.anyOf.every(m => numericKind(m) !== undefined || m.type === 'string') ? kinds[0] : undefined
  }
  return s[Kind] === 'Number' ? 'float' : s[Kind] === 'Integer' ? 'int64' : undefined
}

/** Re-export for loss files: one import for schemas. */
export { Type }
