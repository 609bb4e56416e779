/**
 * The REST response of selected outputs: JSON outputs as flat numbers, written in place, the
 * same text JSON.stringify writes of encodeTensor's flat data; binary outputs as their bytes.
 */
import t from 'tap'
import fc from 'fast-check'
import { LOSSES } from '../../../src/losses'
import { type KernelTensor } from '../../../src/kernels/tensors'
import { encodeTensor } from '../../../src/tensor/encode'
import { writeJson } from '../../../src/tensor/json-writer'
import { inferResponse } from '../../../src/protocols/v2/response'

const mse = LOSSES.find(d => d.name === 'mse') ?? t.fail('mse') as never

/** A float32 or float64 kernel output of any shape up to 3 dims (0-d and empty included), every value (NaN, ±Infinity, -0, subnormals). */
const output: fc.Arbitrary<KernelTensor> = fc.tuple(fc.array(fc.nat({ max: 5 }), { maxLength: 3 }), fc.boolean()).chain(([dims, f32]) => {
  const n = dims.reduce((a, b) => a * b, 1)
  return (f32 ? fc.array(fc.float(), { minLength: n, maxLength: n }) : fc.array(fc.double(), { minLength: n, maxLength: n }))
    .map((xs): KernelTensor => f32 ? { type: 'float32', dims, data: Float32Array.from(xs) } : { type: 'float64', dims, data: Float64Array.from(xs) })
})

t.test('JSON outputs are the text JSON.stringify writes of encodeTensor\'s flat data; binary ones their bytes, in order', async t => {
  fc.assert(fc.property(output, output, fc.boolean(), fc.option(fc.string()), (loss, grad, binary, id) => {
    const answer = inferResponse(mse, id ?? undefined, [{ name: 'loss', binary: false, tensor: loss }, { name: 'grad_input', binary, tensor: grad }])
    const flat = (k: KernelTensor): unknown => (encodeTensor(k.type, k.dims, k.data, 'flat') as { data: unknown }).data
    const outputs: unknown[] = [{ name: 'loss', datatype: loss.type === 'float32' ? 'FP32' : 'FP64', shape: loss.dims, data: flat(loss) }]
    const g = { name: 'grad_input', datatype: grad.type === 'float32' ? 'FP32' : 'FP64', shape: grad.dims }
    outputs.push(binary ? { ...g, parameters: { binary_data_size: grad.data.byteLength } } : { ...g, data: flat(grad) })
    const want = JSON.stringify({ model_name: 'mse', model_version: '1', ...(id === null ? {} : { id }), outputs })
    const got = writeJson(answer.json).toString()
    if (got !== want) throw new Error(`${got} vs ${want}`)
    const bytes = Buffer.concat(answer.binary)
    if (!bytes.equals(binary ? Buffer.from(grad.data.buffer, grad.data.byteOffset, grad.data.byteLength) : Buffer.alloc(0))) throw new Error('binary bytes differ')
  }), { seed: 20251, numRuns: 300 })
  t.pass('300 random responses')
})
