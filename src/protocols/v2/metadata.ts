import { type LossDef } from '../../losses/loss'
import { prepare } from '../../kernels/prepare'
import { exampleBody } from '../../routes/loss'
import { type V2MetadataTensorJson, type V2ModelMetadataJson } from '../../../schemas/v2'

/** The extensions `GET /v2` announces. */
export const EXTENSIONS = ['binary_tensor_data', 'parameters']

/** What `GET /v2/models/{model}` reports as the platform: the kernels are ONNX graphs run by ONNX Runtime. */
export const PLATFORM = 'onnxruntime_onnx'

const variable = (rank: number): number[] => new Array<number>(rank).fill(-1)

/**
 * A loss's model metadata. Tensor ranks are those of its catalog example (every dim -1: any
 * size); an optional argument the example leaves out is [-1]. The loss is 0-d, as under the
 * default reduction; `grad_output` has the rank of the unreduced loss where `none` is allowed.
 * Datatypes are FP32 for floats and INT64 for class indices; an argument that takes either
 * gets the one its example resolves to.
 */
export function modelMetadata (def: LossDef): V2ModelMetadataJson {
  const example = prepare(def, exampleBody(def))
  const inputs: V2MetadataTensorJson[] = def.args.map(decl => {
    const arg = example.args[decl.name]
    const kind = arg?.kind ?? (decl.kind === 'index' ? 'index' : 'float')
    return { name: decl.name, datatype: kind === 'index' ? 'INT64' : 'FP32', shape: arg === undefined ? [-1] : variable(arg.shape.length) }
  })
  // the unreduced loss's rank, where `none` is allowed at all
  const unreducedRank = def.reductions.includes('none') ? example.unreducedShape.length : 0
  inputs.push({ name: 'grad_output', datatype: 'FP32', shape: variable(unreducedRank) })
  const outputs: V2MetadataTensorJson[] = [{ name: 'loss', datatype: 'FP32', shape: [] }]
  for (const decl of def.args) {
    const arg = example.args[decl.name]
    if (decl.grad === true) outputs.push({ name: `grad_${decl.name}`, datatype: 'FP32', shape: arg === undefined ? [-1] : variable(arg.shape.length) })
  }
  return { name: def.name, versions: ['1'], platform: PLATFORM, inputs, outputs }
}
