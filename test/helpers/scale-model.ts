import { onnx } from 'onnx-proto'
import { type KernelTensors } from '../../src/kernels/tensors'

/*
 * The smallest real ONNX kernel, written by hand (no loss, no graph builder): `y = x * factor`
 * over float32 `x` of any length. Tests of the session cache and the worker pool run it, so
 * that they depend on ONNX Runtime alone and their expected values are plain products.
 */

/** The encoded model computing `y = x * factor`. */
export function scaleModel (factor: number): Uint8Array {
  const floatInfo = (name: string): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'n' }] } } }
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'losshub-tests',
    opsetImport: [{ domain: '', version: 18 }],
    graph: {
      name: 'scale',
      node: [{ opType: 'Mul', input: ['x', 'factor'], output: ['y'] }],
      input: [floatInfo('x')],
      output: [floatInfo('y')],
      initializer: [{ name: 'factor', dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [factor] }]
    }
  })
  return onnx.ModelProto.encode(model).finish()
}

/** Feeds for the scale model. */
export function scaleFeeds (...x: number[]): KernelTensors {
  return { x: { type: 'float32', dims: [x.length], data: Float32Array.from(x) } }
}
