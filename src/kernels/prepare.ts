import { type TProperties } from '@sinclair/typebox'
import { fail } from '../errors'
import { type Arg, type LossDef, type Options, type Reduction, type StructuralOptions, numericKind, structuralOptions } from '../losses/loss'
import { type FloatDType } from '../onnx/graph'
import { decodeTensor } from '../tensor/decode'
import { admitArgs, admitCall, DEFAULT_LIMITS, type Limits } from './admission'
import { type HostTensor, type TensorForm, at, converted, fmtShape, sameShape } from '../tensor/tensor'
import { type TensorMemory } from '../tensor/json-reader'

/** A validated call of one loss: everything a kernel needs, nothing left to check. */
export interface PreparedCall {
  def: LossDef
  opts: Options<Record<string, never>> & Record<string, unknown>
  /** What the loss's forward is given, and what of the options keys its kernel (src/losses/loss.ts `structuralOptions`). */
  structural: StructuralOptions<TProperties>
  dtype: FloatDType
  args: Record<string, Arg>
  /** Numeric options fed as 0-d graph inputs. */
  numeric: Record<string, { kind: 'float' | 'int64', value: number }>
  grad: boolean
  /** The upstream gradient (shaped like the loss); ones when not given. */
  gradOutput?: HostTensor
  /** Shape of the returned loss: `unreducedShape` with reduction "none", else 0-d. */
  lossShape: number[]
  /** Shape of the loss before its reduction, as the loss's `check` found it. */
  unreducedShape: number[]
  /** The form every response tensor is written in. */
  form: TensorForm
  /** What the call costs (src/kernels/admission.ts): checked against MAX_ELEMENTS before any kernel runs. */
  cost: Cost
  /**
   * Memory for the arguments' copies in the kernel's dtypes (the request's reused memory,
   * given back once it is answered); undefined: each copy takes memory of its own.
   */
  memory?: TensorMemory
}

/**
 * A call's cost: `elements`, its largest tensor (an argument, a broadcast, an intermediate of
 * the graph, an output, a gradient), the measure of its memory; `steps`, the sequential steps
 * of its graph (a Scan's iterations, 1 otherwise), the measure of its latency beside elements;
 * `bytes`, the decoded arguments' bytes, what it holds while queued.
 */
export interface Cost { elements: number, steps: number, bytes: number }

const COMMON = new Set(['reduction', 'grad', 'grad_output'])

/**
 * Decodes and validates a request body (already schema-checked) for `def`: tensor forms,
 * argument kinds and dtypes, the loss's own shape and domain checks (which give the unreduced
 * shape; the reduction gives the returned one), grad_output. `memory` is the request's, for
 * the arguments' conversions to the kernel's dtype (see PreparedCall).
 */
export function prepare (def: LossDef, body: Record<string, unknown>, limits: Limits = DEFAULT_LIMITS, memory?: TensorMemory): PreparedCall {
  const args: Record<string, Arg> = {}
  for (const decl of def.args) {
    const json = body[decl.name]
    if (json === undefined) {
      if (!decl.optional) fail('INVALID_REQUEST', `body must have required property '${decl.name}'`)
      continue
    }
    const decoded = decodeTensor(decl.name, json)
    const t = decl.integers === true && (decoded.dtype === 'int32' || decoded.dtype === 'int64') ? integersAsFloats(decoded, memory) : decoded
    const first = args[def.args[0].name]
    const kind = resolveKind(decl.name, decl.kind, t, first, decl.nestedFloats?.(body) === true)
    // nested floats are a float32 tensor (torch.tensor of a list): rounded once here, so that a
    // float64 computation (another argument in float64) promotes float32 values, as PyTorch does
    const data = kind === 'float' && t.dtype === undefined && !(t.data instanceof Float32Array) ? converted(Float32Array, t.data, memory) : t.data
    args[decl.name] = { ...t, data, kind }
  }
  const opts: Record<string, unknown> = {}
  const numeric: PreparedCall['numeric'] = {}
  for (const [name, schema] of Object.entries(def.options)) {
    opts[name] = body[name]
    const kind = numericKind(schema)
    if (kind !== undefined && typeof body[name] === 'number') numeric[name] = { kind, value: body[name] as number }
    // JSON numbers past 2^53 are rounded on reading: the value the client meant is lost
    if (kind === 'int64' && typeof body[name] === 'number' && !Number.isSafeInteger(body[name])) {
      fail('INVALID_OPTION', `${name}: ${String(body[name])} is not an integer JSON carries exactly (|value| <= 2^53 - 1)`)
    }
  }
  for (const k of COMMON) opts[k] = body[k]
  const reduction = (body.reduction ?? 'mean') as Reduction
  opts.reduction = reduction
  const floats = Object.values(args).filter(a => a.kind === 'float')
  const dtype: FloatDType = floats.some(a => a.dtype === 'float64') ? 'float64' : 'float32'
  const typedOpts = opts as PreparedCall['opts']
  const grad = body.grad === true
  let gradOutput: HostTensor | undefined
  if (body.grad_output !== undefined) {
    if (!grad) fail('INVALID_OPTION', 'grad_output: only meaningful with grad: true')
    gradOutput = decodeTensor('grad_output', body.grad_output)
  }
  admitArgs(gradOutput === undefined ? args : { ...args, grad_output: gradOutput }, limits.maxElements)
  const unreducedShape = def.check(args, typedOpts)
  const lossShape = reduction === 'none' ? unreducedShape : []
  const cost = admitCall(def, args, typedOpts, lossShape, limits)
  if (gradOutput !== undefined) {
    if (gradOutput.dtype === 'int32' || gradOutput.dtype === 'int64') fail('INVALID_DTYPE', `grad_output: expected float32 or float64, got ${gradOutput.dtype}`)
    if (!sameShape(gradOutput.shape, lossShape)) {
      fail('SHAPE_MISMATCH', `grad_output: must have the loss's shape ${fmtShape(lossShape)} (reduction "${reduction}"), got ${fmtShape(gradOutput.shape)}`)
    }
  }
  const structural = structuralOptions(def, typedOpts)
  return { def, opts: typedOpts, structural, dtype, args, numeric, grad, gradOutput, lossShape, unreducedShape, form: args[def.args[0].name].form, cost, memory }
}

/** An integer tensor of an argument that takes integers as floats (ArgDecl.integers): float32 values, like nested numbers. */
function integersAsFloats (t: HostTensor, memory: TensorMemory | undefined): HostTensor {
  const data = t.data instanceof BigInt64Array ? Float32Array.from(t.data, Number) : converted(Float32Array, t.data, memory)
  return { ...t, dtype: undefined, data }
}

function resolveKind (name: string, kind: Arg['kind'] | 'float-or-index', t: HostTensor, first: Arg | undefined, nestedFloats: boolean): Arg['kind'] {
  const typedInt = t.dtype === 'int32' || t.dtype === 'int64'
  let resolved: Arg['kind']
  if (kind === 'float-or-index') {
    // PyTorch tells class indices from probabilities by dtype; nested arrays have none, so
    // a target shaped like the input holds probabilities and any other holds indices (unless
    // the loss's options say its nested arrays hold floats: `nestedFloats`).
    resolved = t.dtype !== undefined ? (typedInt ? 'index' : 'float') : nestedFloats || (first !== undefined && sameShape(t.shape, first.shape)) ? 'float' : 'index'
  } else resolved = kind
  if (resolved === 'float' && typedInt) fail('INVALID_DTYPE', `${name}: expected float32 or float64 elements, got ${t.dtype}`)
  if (resolved === 'index') {
    if (t.dtype === 'float32' || t.dtype === 'float64') fail('INVALID_DTYPE', `${name}: class indices must be int32 or int64, got ${t.dtype}`)
    if (!(t.data instanceof BigInt64Array)) {
      for (let i = 0; i < t.data.length; i++) {
        const v = at(t.data, i)
        if (!Number.isInteger(v)) fail('INVALID_DTYPE', `${name}: class indices must be integers, got ${v} at flat position ${i}`)
        if (!Number.isSafeInteger(v)) fail('INVALID_TENSOR', `${name}: ${v} at flat position ${i} is not an integer JSON carries exactly (|value| <= 2^53 - 1; larger int64 values travel as bytes: base64 data, V2's binary form, gRPC's raw_input_contents)`)
      }
    }
  }
  return resolved
}
