import { onnx } from 'onnx-proto'
import { fail } from '../errors'

/** Float element types a loss computes in. */
export type FloatDType = 'float32' | 'float64'
/** Element types a graph value can have. */
export type DType = FloatDType | 'int64' | 'bool'

/**
 * What the builder knows statically of one dimension: exactly 1, or some size fixed only
 * at run time. Enough to derive broadcasting gradients without a session per shape.
 */
export type Dim = 1 | 'n'

/** The ONNX opset every graph imports; ops below are written against it. */
export const OPSET = 18

/** The ONNX element type of each dtype (TensorProto.DataType; also Cast's `to`). */
export const ELEM_TYPE: Readonly<Record<DType, number>> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL
}

/** A symbolic tensor of a graph under construction. */
export class Value {
  constructor (
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly dims: readonly Dim[],
    /** Whether a gradient can flow to this value from a differentiable input. */
    readonly tracked: boolean
  ) {}

  get rank (): number { return this.dims.length }
}

/** Row-to-request map of a batched graph: `ids` int64 [rows], `count` int64 [1] = requests. */
export interface Segments { ids: Value, count: Value }

/** Attribute values accepted by `Graph.node`. */
export type Attr = number | number[] | string | onnx.ITensorProto | onnx.IGraphProto

/** Vector-Jacobian product of one recorded op: the gradient of each input, or undefined. */
export type Vjp = (grad: Value) => Array<Value | undefined>

interface TapeEntry { inputs: Value[], output: Value, vjp: Vjp }

/**
 * A graph under construction: values, ONNX nodes and the tape of differentiable ops that
 * `backward` walks. Node names are `<graph>/<Op>_<n>` so an ORT error points at the loss.
 */
export class Graph {
  private readonly nodes: onnx.INodeProto[] = []
  private readonly inputs: onnx.IValueInfoProto[] = []
  private readonly outputs: onnx.IValueInfoProto[] = []
  private readonly initializers: onnx.ITensorProto[] = []
  private readonly constants = new Map<string, Value>()
  readonly tape: TapeEntry[] = []
  /** Off while building a backward pass or a composite's insides: those are not differentiated. */
  private recording = true
  private counter = 0
  /**
   * Set when the graph evaluates a batch of requests concatenated along axis 0: which
   * request each row belongs to, so that reductions stay per request (see reduce.ts).
   */
  segments: Segments | undefined

  /** The float type of literals and of constants by default: the call's dtype, or `withFloat`'s while it builds. */
  get float (): FloatDType { return this.floatType }
  private floatType: FloatDType

  constructor (readonly name: string, float: FloatDType) { this.floatType = float }

  /**
   * Builds a part of the graph whose literals are `float` (a float32 call's numerically
   * delicate insides in float64); the part casts its own inputs and outputs.
   */
  withFloat<T> (float: FloatDType, build: () => T): T {
    const was = this.floatType
    this.floatType = float
    try { return build() } finally { this.floatType = was }
  }

  /** Declares a graph input; `tracked` marks the arguments gradients are taken for. */
  input (name: string, dtype: DType, dims: readonly Dim[], tracked = false): Value {
    this.inputs.push(valueInfo(name, dtype, dims))
    return new Value(this, name, dtype, dims, tracked)
  }

  /** Marks a value as a graph output under the given name. */
  output (name: string, value: Value): void {
    const out = value.name === name ? value : this.node('Identity', [value], {}, value.dtype, value.dims, name)
    this.outputs.push(valueInfo(name, out.dtype, out.dims))
  }

  /** A scalar (or 1-D when given an array) constant, shared by every use; NaN and the infinities too. */
  constant (value: number | readonly number[], dtype: DType = this.float): Value {
    // String(), not JSON: NaN and the infinities must not share one key (JSON writes null)
    const key = `${dtype}:${typeof value === 'number' ? String(value) : `[${value.map(String).join(',')}]`}`
    const cached = this.constants.get(key)
    if (cached !== undefined) return cached
    const name = `${this.name}/const_${this.constants.size}`
    const data = typeof value === 'number' ? [value] : value
    const dims = typeof value === 'number' ? [] : [data.length]
    this.initializers.push(tensorProto(dtype, dims, data, name))
    const v = new Value(this, name, dtype, dims.map(d => (d === 1 ? 1 : 'n') as Dim), false)
    this.constants.set(key, v)
    return v
  }

  /** Emits one ONNX node with a single output and returns that output. */
  node (op: string, inputs: Array<Value | ''>, attrs: Record<string, Attr>, dtype: DType, dims: readonly Dim[], name?: string): Value {
    const id = `${this.name}/${op}_${this.counter++}`
    const out = name ?? id
    this.nodes.push({
      name: id,
      opType: op,
      input: inputs.map(v => (v === '' ? '' : v.name)),
      output: [out],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v))
    })
    const tracked = this.recording && inputs.some(v => v !== '' && v.tracked)
    return new Value(this, out, dtype, dims, tracked)
  }

  /**
   * Emits one ONNX node with several outputs (Scan, Loop: final states plus stacked
   * outputs) and returns one value per output. Not recorded: wrap it in `custom` for a VJP.
   */
  nodeOutputs (op: string, inputs: Array<Value | ''>, attrs: Record<string, Attr>, outs: ReadonlyArray<{ dtype: DType, dims: readonly Dim[] }>): Value[] {
    const id = `${this.name}/${op}_${this.counter++}`
    const names = outs.map((_, i) => `${id}:${i}`)
    this.nodes.push({
      name: id,
      opType: op,
      input: inputs.map(v => (v === '' ? '' : v.name)),
      output: names,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v))
    })
    const tracked = this.recording && inputs.some(v => v !== '' && v.tracked)
    return outs.map((o, i) => new Value(this, names[i], o.dtype, o.dims, tracked))
  }

  /** Records a differentiable op so that `backward` can apply its VJP. */
  record (inputs: Value[], output: Value, vjp: Vjp): Value {
    if (output.tracked) this.tape.push({ inputs, output, vjp })
    return output
  }

  /** Builds with the tape off (gradient graphs, the insides of composite ops). */
  untracked<T> (build: () => T): T {
    const was = this.recording
    this.recording = false
    try { return build() } finally { this.recording = was }
  }

  /** A fresh name for a subgraph-local value. */
  fresh (hint: string): string { return `${this.name}/${hint}_${this.counter++}` }

  /** The GraphProto of what has been built (the model's graph, or a Scan body). */
  toGraphProto (): onnx.IGraphProto {
    return { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers }
  }

  /**
   * The encoded ModelProto, ready for `InferenceSession.create(bytes)`. The graph is checked
   * first (see `checkGraph`): a builder bug fails here, naming the value, not in ONNX Runtime.
   */
  toModel (): Uint8Array {
    const graph = this.toGraphProto()
    checkGraph(graph, new Set())
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'losshub',
      opsetImport: [{ domain: '', version: OPSET }],
      graph
    })
    return onnx.ModelProto.encode(model).finish()
  }
}

/**
 * Throws an INTERNAL error unless every node input of `graph` is defined before the node (a
 * graph input, an initializer, an earlier node's output, or a value of the enclosing graphs
 * `outer` for a subgraph) and every graph output is defined. Subgraphs (Scan bodies) are
 * checked the same way, seeing what is defined before their node.
 */
function checkGraph (graph: onnx.IGraphProto, outer: ReadonlySet<string>): void {
  const defined = new Set(outer)
  for (const v of graph.input ?? []) defined.add(v.name ?? '')
  for (const t of graph.initializer ?? []) defined.add(t.name ?? '')
  for (const node of graph.node ?? []) {
    for (const a of node.attribute ?? []) if (a.g != null) checkGraph(a.g, defined)
    for (const [i, name] of (node.input ?? []).entries()) {
      // '' is an optional input left out
      if (name !== '' && !defined.has(name)) {
        fail('INTERNAL', `graph ${String(graph.name)}: input ${i} of node ${String(node.name)} (${String(node.opType)}) is ${name}, which is not defined before it`)
      }
    }
    for (const name of node.output ?? []) defined.add(name)
  }
  for (const v of graph.output ?? []) {
    if (!defined.has(v.name ?? '')) fail('INTERNAL', `graph ${String(graph.name)}: output ${String(v.name)} is not produced by any node, input or initializer`)
  }
}

function valueInfo (name: string, dtype: DType, dims: readonly Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ELEM_TYPE[dtype], shape: { dim: dims.map(d => (d === 1 ? { dimValue: 1 } : { dimParam: '' })) } } }
  }
}

/** An ONNX TensorProto holding `data` as `dtype`: named for an initializer, unnamed for a node attribute. */
export function tensorProto (dtype: DType, dims: number[], data: readonly number[], name?: string): onnx.ITensorProto {
  const t: onnx.ITensorProto = { ...(name === undefined ? {} : { name }), dims, dataType: ELEM_TYPE[dtype] }
  if (dtype === 'float32') t.floatData = [...data]
  else if (dtype === 'float64') t.doubleData = [...data]
  else if (dtype === 'int64') t.int64Data = [...data]
  else t.int32Data = [...data] // ONNX keeps bool elements in int32_data
  return t
}

function attribute (name: string, v: Attr): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType
  if (typeof v === 'string') return { name, type: T.STRING, s: Buffer.from(v) }
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v }
  if ('node' in v) return { name, type: T.GRAPH, g: v }
  return { name, type: T.TENSOR, t: v as onnx.ITensorProto }
}
