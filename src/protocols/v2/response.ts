import { type LossDef } from '../../losses/loss'
import { type KernelTensor, type KernelTensors } from '../../kernels/tensors'
import { encodeTensor } from '../../tensor/encode'
import { type V2ResponseOutputJson } from '../../../schemas/v2'
import { v2DataType } from './datatypes'
import { type OutputChoice } from './request'

/** An inference response: its JSON object and, when some outputs are binary, their bytes in order. */
export interface V2Answer { json: Record<string, unknown>, binary: Buffer[] }

/**
 * The V2 response of a loss's kernel outputs: the outputs asked for, or `loss` and every
 * gradient computed; binary ones as their little-endian bytes, the others as flat JSON numbers.
 */
export function inferResponse (def: LossDef, id: string | undefined, out: KernelTensors, outputs: OutputChoice[] | undefined, binaryAll: boolean): V2Answer {
  const chosen = outputs ?? ['loss', ...def.args.map(a => `grad_${a.name}`)].filter(n => out[n] !== undefined).map(name => ({ name, binary: binaryAll }))
  const binary: Buffer[] = []
  const list = chosen.map(({ name, binary: asBinary }): V2ResponseOutputJson => {
    const t = out[name]
    const head = { name, datatype: v2DataType(t.type), shape: [...t.dims] }
    if (!asBinary) return { ...head, data: flatData(t) }
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)
    binary.push(bytes)
    return { ...head, parameters: { binary_data_size: bytes.length } }
  })
  const json: Record<string, unknown> = { model_name: def.name, model_version: '1' }
  if (id !== undefined) json.id = id
  json.outputs = list
  return { json, binary }
}

/** Flat row-major elements as the API writes numbers (shortest float32 decimals, non-finite as strings). */
function flatData (t: KernelTensor): Array<number | 'NaN' | 'Infinity' | '-Infinity'> {
  return (encodeTensor(t.type, t.dims, t.data, 'flat') as { data: Array<number | 'NaN' | 'Infinity' | '-Infinity'> }).data
}
