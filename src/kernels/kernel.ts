import * as ort from 'onnxruntime-node'
import { type Arg, numericKind } from '../losses/loss'
import { backward } from '../onnx/autodiff'
import { type Dim, Graph, type Value } from '../onnx/graph'
import { type TensorData } from '../tensor/tensor'
import { type PreparedCall } from './prepare'

/** What varies the graph: everything but tensor sizes (other than 1) and numeric option values. */
export function kernelKey (call: PreparedCall): string {
  const { def, opts, dtype, args, grad } = call
  const structural = def.structural !== undefined
    ? def.structural(opts)
    : Object.keys(def.options).filter(k => numericKind(def.options[k]) === undefined).map(k => opts[k])
  const sig = Object.entries(args).map(([name, a]) => `${name}:${a.kind}:${dimsOf(a.shape).join('')}`)
  return [def.name, dtype, opts.reduction, grad ? 'grad' : 'value', JSON.stringify(structural), ...sig].join('|')
}

/** Static dims of a run-time shape: 1 stays 1, anything else is 'n'. */
export function dimsOf (shape: readonly number[]): Dim[] { return shape.map(d => (d === 1 ? 1 : 'n')) }

/** Builds the ONNX model of a call: the loss and, when asked, its gradients, in one graph. */
export function buildModel (call: PreparedCall): Uint8Array {
  const { def, opts, dtype, args, grad } = call
  const G = new Graph(def.name, dtype)
  const x: Record<string, Value> = {}
  const tracked: Array<[string, Value]> = []
  for (const decl of def.args) {
    const a = args[decl.name]
    if (a === undefined) continue
    x[decl.name] = G.input(decl.name, a.kind === 'index' ? 'int64' : dtype, dimsOf(a.shape), grad && decl.grad === true)
    if (grad && decl.grad === true) tracked.push([decl.name, x[decl.name]])
  }
  for (const [name, p] of Object.entries(call.numeric)) x[name] = G.input(name, p.kind === 'int64' ? 'int64' : dtype, [])
  const loss = def.forward(G, x, opts)
  G.output('loss', loss)
  if (grad) {
    const seed = G.input('grad_output', dtype, loss.dims)
    const grads = backward(loss, seed, tracked.map(([, v]) => v))
    tracked.forEach(([name], i) => G.output(`grad_${name}`, grads[i]))
  }
  return G.toModel()
}

/** The ORT feeds of a call: arguments converted to the kernel's dtypes, options as 0-d tensors. */
export function buildFeeds (call: PreparedCall): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {}
  for (const [name, a] of Object.entries(call.args)) {
    const [type, data] = typed(a, call.dtype)
    feeds[name] = new ort.Tensor(type, data, a.shape)
  }
  for (const [name, p] of Object.entries(call.numeric)) {
    feeds[name] = p.kind === 'int64'
      ? new ort.Tensor('int64', BigInt64Array.of(BigInt(p.value)), [])
      : new ort.Tensor(call.dtype, call.dtype === 'float32' ? Float32Array.of(p.value) : Float64Array.of(p.value), [])
  }
  if (call.grad) {
    const go = call.gradOutput
    const Arr = call.dtype === 'float32' ? Float32Array : Float64Array
    const data = go !== undefined ? Arr.from(go.data as ArrayLike<number>) : new Arr(call.lossShape.reduce((n, d) => n * d, 1)).fill(1)
    feeds.grad_output = new ort.Tensor(call.dtype, data, call.lossShape)
  }
  return feeds
}

function typed (a: Arg, dtype: 'float32' | 'float64'): ['int64', BigInt64Array] | ['float32', Float32Array] | ['float64', Float64Array] {
  const d: TensorData = a.data
  if (a.kind === 'index') return ['int64', d instanceof BigInt64Array ? d : BigInt64Array.from(d as ArrayLike<number>, v => BigInt(v))]
  if (dtype === 'float32') return ['float32', d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>)]
  return ['float64', d instanceof Float64Array ? d : Float64Array.from(d as ArrayLike<number>)]
}
