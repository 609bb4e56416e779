import { type LossDef } from '../../losses/loss'
import { type KernelTensor, type KernelTensors } from '../../kernels/tensors'
import { TensorOut } from '../../tensor/json-writer'
import { v2DataType } from './datatypes'
import { type OutputChoice } from './request'

/** An output to answer with: its name, its tensor, and whether it goes as raw bytes. */
export interface SelectedOutput { name: string, binary: boolean, tensor: KernelTensor }

/** An inference response: its JSON object (for writeJson) and, when some outputs are binary, their bytes in order. */
export interface V2Answer { json: Record<string, unknown>, binary: Buffer[] }

/**
 * The outputs a V2 response holds, in order: the ones asked for, or `loss` and every gradient
 * computed, each binary as asked (or as `binaryAll`). Every protocol answers with these.
 */
export function selectOutputs (def: LossDef, out: KernelTensors, outputs: OutputChoice[] | undefined, binaryAll: boolean): SelectedOutput[] {
  const chosen = outputs ?? ['loss', ...def.args.map(a => `grad_${a.name}`)].filter(n => out[n] !== undefined).map(name => ({ name, binary: binaryAll }))
  return chosen.map(({ name, binary }) => ({ name, binary, tensor: out[name] }))
}

/** A tensor's elements as little-endian bytes: a view over its memory, not a copy. */
export function tensorBytes (t: KernelTensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)
}

/**
 * The REST response of selected outputs: binary ones as their little-endian bytes after the
 * JSON, the others as flat JSON numbers.
 */
export function inferResponse (def: LossDef, id: string | undefined, outputs: SelectedOutput[]): V2Answer {
  const binary: Buffer[] = []
  const list = outputs.map(({ name, binary: asBinary, tensor: t }): Record<string, unknown> => {
    const head = { name, datatype: v2DataType(t.type), shape: [...t.dims] }
    if (!asBinary) return { ...head, data: flatData(t) }
    const bytes = tensorBytes(t)
    binary.push(bytes)
    return { ...head, parameters: { binary_data_size: bytes.length } }
  })
  const json: Record<string, unknown> = { model_name: def.name, model_version: '1' }
  if (id !== undefined) json.id = id
  json.outputs = list
  return { json, binary }
}

/**
 * Flat row-major elements as the API writes numbers (shortest float32 decimals, non-finite as
 * strings), written in place by writeJson: as a one-dimensional tensor in the nested form.
 */
function flatData (t: KernelTensor): TensorOut {
  return new TensorOut(t.type, [t.data.length], t.data, 'nested')
}
