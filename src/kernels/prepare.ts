import { fail } from '../errors'
import { type Arg, type LossDef, type Options, type Reduction, numericKind } from '../losses/loss'
import { type FloatDType } from '../onnx/graph'
import { decodeTensor } from '../tensor/decode'
import { type HostTensor, type TensorForm, at, fmtShape, sameShape } from '../tensor/tensor'

/** A validated call of one loss: everything a kernel needs, nothing left to check. */
export interface PreparedCall {
  def: LossDef
  opts: Options<Record<string, never>> & Record<string, unknown>
  dtype: FloatDType
  args: Record<string, Arg>
  /** Numeric options fed as 0-d graph inputs. */
  numeric: Record<string, { kind: 'float' | 'int64', value: number }>
  grad: boolean
  /** The upstream gradient (shaped like the loss); ones when not given. */
  gradOutput?: HostTensor
  /** Shape of the returned loss. */
  lossShape: number[]
  /** The form every response tensor is written in. */
  form: TensorForm
}

const COMMON = new Set(['reduction', 'grad', 'grad_output'])

/**
 * Decodes and validates a request body (already schema-checked) for `def`: tensor forms,
 * argument kinds and dtypes, the loss's own shape and domain checks, grad_output.
 */
export function prepare (def: LossDef, body: Record<string, unknown>): PreparedCall {
  const args: Record<string, Arg> = {}
  for (const decl of def.args) {
    const json = body[decl.name]
    if (json === undefined) {
      if (!decl.optional) fail('INVALID_REQUEST', `body must have required property '${decl.name}'`)
      continue
    }
    const t = decodeTensor(decl.name, json)
    const first = args[def.args[0].name]
    args[decl.name] = { ...t, kind: resolveKind(decl.name, decl.kind, t, first) }
  }
  const opts: Record<string, unknown> = {}
  const numeric: PreparedCall['numeric'] = {}
  for (const [name, schema] of Object.entries(def.options)) {
    opts[name] = body[name]
    const kind = numericKind(schema)
    if (kind !== undefined && typeof body[name] === 'number') numeric[name] = { kind, value: body[name] as number }
  }
  for (const k of COMMON) opts[k] = body[k]
  const reduction = (body.reduction ?? 'mean') as Reduction
  opts.reduction = reduction
  const floats = Object.values(args).filter(a => a.kind === 'float')
  const dtype: FloatDType = floats.some(a => a.dtype === 'float64') ? 'float64' : 'float32'
  const typedOpts = opts as PreparedCall['opts']
  const lossShape = def.check(args, typedOpts)
  const grad = body.grad === true
  let gradOutput: HostTensor | undefined
  if (body.grad_output !== undefined) {
    if (!grad) fail('INVALID_OPTION', 'grad_output: only meaningful with grad: true')
    gradOutput = decodeTensor('grad_output', body.grad_output)
    if (gradOutput.dtype === 'int32' || gradOutput.dtype === 'int64') fail('INVALID_DTYPE', `grad_output: expected float32 or float64, got ${gradOutput.dtype}`)
    if (!sameShape(gradOutput.shape, lossShape)) {
      fail('SHAPE_MISMATCH', `grad_output: must have the loss's shape ${fmtShape(lossShape)} (reduction "${reduction}"), got ${fmtShape(gradOutput.shape)}`)
    }
  }
  return { def, opts: typedOpts, dtype, args, numeric, grad, gradOutput, lossShape, form: args[def.args[0].name].form }
}

function resolveKind (name: string, kind: Arg['kind'] | 'float-or-index', t: HostTensor, first: Arg | undefined): Arg['kind'] {
  const typedInt = t.dtype === 'int32' || t.dtype === 'int64'
  let resolved: Arg['kind']
  if (kind === 'float-or-index') {
    // PyTorch tells class indices from probabilities by dtype; nested arrays have none, so
    // a target shaped like the input holds probabilities and any other holds indices.
    resolved = t.dtype !== undefined ? (typedInt ? 'index' : 'float') : first !== undefined && sameShape(t.shape, first.shape) ? 'float' : 'index'
  } else resolved = kind
  if (resolved === 'float' && typedInt) fail('INVALID_DTYPE', `${name}: expected float32 or float64 elements, got ${t.dtype}`)
  if (resolved === 'index') {
    if (t.dtype === 'float32' || t.dtype === 'float64') fail('INVALID_DTYPE', `${name}: class indices must be int32 or int64, got ${t.dtype}`)
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isInteger(at(t.data, i))) fail('INVALID_DTYPE', `${name}: class indices must be integers, got ${at(t.data, i)} at flat position ${i}`)
    }
  }
  return resolved
}

/** Requires `arg` to have exactly `shape`. */
export function expectShape (name: string, arg: Arg, shape: readonly number[], why = ''): void {
  if (!sameShape(arg.shape, shape)) fail('SHAPE_MISMATCH', `${name}: expected shape ${fmtShape(shape)}${why}, got ${fmtShape(arg.shape)}`)
}

/** Requires every index of `arg` (other than `ignore`) to lie in [0, classes). */
export function expectIndicesInRange (name: string, arg: Arg, classes: number, ignore?: number): void {
  for (let i = 0; i < arg.data.length; i++) {
    const v = at(arg.data, i)
    if (v === ignore) continue
    if (v < 0 || v >= classes) {
      fail('INDEX_OUT_OF_RANGE', `${name}: class index ${v} at flat position ${i} is out of range [0, ${classes})${ignore !== undefined ? ` (ignore_index is ${ignore})` : ''}`)
    }
  }
}

/** Requires every element of `arg` to lie in [lo, hi]. */
export function expectInRange (name: string, arg: Arg, lo: number, hi: number): void {
  for (let i = 0; i < arg.data.length; i++) {
    const v = at(arg.data, i)
    if (!(v >= lo && v <= hi)) fail('DOMAIN_ERROR', `${name}: elements must lie in [${lo}, ${hi}], got ${v} at flat position ${i}`)
  }
}

