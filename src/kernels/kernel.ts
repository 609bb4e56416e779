import { type Arg } from '../losses/loss'
import { backward } from '../onnx/autodiff'
import { type Dim, Graph, type Value } from '../onnx/graph'
import { type TensorData, converted, sizeOf } from '../tensor/tensor'
import { type TensorMemory } from '../tensor/json-reader'
import { type PreparedCall } from './prepare'
import { type KernelTensor, type KernelTensors } from './tensors'

/** Static dims of a run-time shape: 1 stays 1, anything else is 'n'. */
export function dimsOf (shape: readonly number[]): Dim[] { return shape.map(d => (d === 1 ? 1 : 'n')) }

/**
 * What varies the graph: loss, dtype, grad, everything `forward` is given (the reduction, the
 * structural options), the numeric options present (an optional one is an input or not), and
 * each argument's kind and static dims. In a batched kernel the batch arguments' first dim is 'n'.
 */
export function kernelKey (call: PreparedCall, batched = false): string {
  const { def, structural, dtype, args, grad } = call
  const sig = Object.entries(args).map(([name, a]) => `${name}:${a.kind}:${argDims(call, name, a, batched).join('')}`)
  const numeric = Object.keys(call.numeric).join(',')
  return [batched ? 'batch' : 'solo', def.name, dtype, grad ? 'grad' : 'value', JSON.stringify(structural), numeric, ...sig].join('|')
}

function argDims (call: PreparedCall, name: string, a: Arg, batched: boolean): Dim[] {
  const dims = dimsOf(a.shape)
  return batched && call.def.batch?.includes(name) === true ? ['n', ...dims.slice(1)] : dims
}

/**
 * Builds the ONNX model of a call: the loss and, when asked, its gradients, in one graph.
 * Batched, it takes rows of many requests (`segment_ids` maps rows to requests) and reduces
 * per request; built from any one member, since all members share the kernel key.
 */
export function buildModel (call: PreparedCall, batched = false): Uint8Array {
  const { def, structural, dtype, args, grad } = call
  const G = new Graph(def.name, dtype)
  if (batched) G.segments = { ids: G.input('segment_ids', 'int64', ['n']), count: G.input('segment_count', 'int64', [1]) }
  const x: Record<string, Value> = {}
  const tracked: Array<[string, Value]> = []
  for (const decl of def.args) {
    const a = args[decl.name]
    if (a === undefined) continue
    const wantGrad = grad && decl.grad === true
    x[decl.name] = G.input(decl.name, a.kind === 'index' ? 'int64' : dtype, argDims(call, decl.name, a, batched), wantGrad)
    if (wantGrad) tracked.push([decl.name, x[decl.name]])
  }
  const optionDims = batched && call.def.perRowOptions !== undefined ? perRowDims(call) : []
  for (const [name, p] of Object.entries(call.numeric)) x[name] = G.input(name, p.kind === 'int64' ? 'int64' : dtype, optionDims)
  const loss = def.forward(G, x, structural)
  G.output('loss', loss)
  if (grad) {
    const seed = G.input('grad_output', dtype, loss.dims)
    const grads = backward(loss, seed, tracked.map(([, v]) => v))
    tracked.forEach(([name], i) => G.output(`grad_${name}`, grads[i]))
  }
  return G.toModel()
}

/** Dims of a per-row option input: one value per row, broadcasting along the batch arguments' other axes. */
export function perRowDims (call: PreparedCall): Dim[] {
  if (call.def.perRowOptions === 'rows') return ['n']
  const rank = Math.max(...(call.def.batch ?? []).map(n => call.args[n]?.shape.length ?? 0))
  return ['n', ...Array<Dim>(Math.max(0, rank - 1)).fill(1)]
}

/** The inputs of a call alone: arguments in the kernel's dtypes, options as 0-d tensors, the seed. */
export function buildFeeds (call: PreparedCall): KernelTensors {
  const feeds: KernelTensors = {}
  for (const [name, a] of Object.entries(call.args)) feeds[name] = argTensor(a, call.dtype, call.memory)
  Object.assign(feeds, optionFeeds(call))
  if (call.grad) feeds.grad_output = gradOutput(call)
  return feeds
}

/** Numeric options as 0-d tensors. */
export function optionFeeds (call: PreparedCall): KernelTensors {
  const feeds: KernelTensors = {}
  for (const [name, p] of Object.entries(call.numeric)) {
    feeds[name] = p.kind === 'int64'
      ? { type: 'int64', dims: [], data: BigInt64Array.of(BigInt(p.value)) }
      : { type: call.dtype, dims: [], data: call.dtype === 'float32' ? Float32Array.of(p.value) : Float64Array.of(p.value) }
  }
  return feeds
}

/** The upstream gradient of a call: the given grad_output (lent when of the call's dtype), or ones shaped like the loss. */
export function gradOutput (call: PreparedCall): KernelTensor {
  const Arr = call.dtype === 'float32' ? Float32Array : Float64Array
  const go = call.gradOutput
  const dims = [...call.lossShape]
  if (go !== undefined && go.data instanceof Arr) return { type: call.dtype, dims, data: go.data, source: go }
  const data = go !== undefined ? Arr.from(go.data as ArrayLike<number>) : new Arr(sizeOf(call.lossShape)).fill(1)
  return { type: call.dtype, dims, data }
}

/**
 * An argument converted to its kernel dtype (int64 indices, or the call's float type). When
 * it is already of that dtype, its own array is lent (`source`), not copied: the executor may
 * move it to a kernel worker, which hands it back if the run fails (src/kernels/worker-pool.ts).
 * A float conversion goes into `memory` when that provides some (see PreparedCall).
 */
export function argTensor (a: Arg, dtype: 'float32' | 'float64', memory?: TensorMemory): KernelTensor {
  const d: TensorData = a.data
  const dims = [...a.shape]
  if (a.kind === 'index') return d instanceof BigInt64Array ? { type: 'int64', dims, data: d, source: a } : { type: 'int64', dims, data: int64Of(d as ArrayLike<number>) }
  if (dtype === 'float32') return d instanceof Float32Array ? { type: 'float32', dims, data: d, source: a } : { type: 'float32', dims, data: converted(Float32Array, d, memory) }
  return d instanceof Float64Array ? { type: 'float64', dims, data: d, source: a } : { type: 'float64', dims, data: converted(Float64Array, d, memory) }
}

/** Whether this machine stores the low 32 bits of an int64 first (ONNX Runtime's tensors are little-endian too). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1

/**
 * Integers (safe ones: prepare() checked them) as int64, written as two 32-bit halves: a
 * BigInt per element cost more than the rest of a small request's conversion.
 */
function int64Of (d: ArrayLike<number>): BigInt64Array {
  if (!LITTLE_ENDIAN) return BigInt64Array.from(d, v => BigInt(v))
  const out = new BigInt64Array(d.length)
  const halves = new Int32Array(out.buffer)
  for (let i = 0; i < d.length; i++) {
    const v = d[i]
    const high = Math.floor(v / 4294967296)
    halves[2 * i] = v - high * 4294967296 // 0 to 2^32 - 1, stored modulo 2^32
    halves[2 * i + 1] = high
  }
  return out
}
