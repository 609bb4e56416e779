/**
 * Large binary tensors (V2 REST's binary form, gRPC's raw_input_contents) are read into shared
 * memory that a kernel worker reads in place and that is reused once the request is answered:
 * requests one after another and at once each get their own answer (a hand-computed mean),
 * and the memory is back in its pool afterwards.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { SMALLEST_KEPT_BODY, keptMemoryBytes } from '../../../src/http/body-memory'
import { grpcApp, outputsOf } from './grpc'
import { binaryBody, NO_SHEDDING, readResponse } from './v2'

const N = SMALLEST_KEPT_BODY / 4 // float32 elements per tensor: two of them make a body over the smallest kept size

/** An mse request in two float32 tensors of N elements, and its mean squared error computed here in float64. */
function mseCase (seed: number): { input: Float32Array, target: Float32Array, want: number } {
  const input = Float32Array.from({ length: N }, (_, i) => Math.sin(i * seed))
  const target = Float32Array.from({ length: N }, (_, i) => Math.cos(i + seed))
  let sum = 0
  for (let i = 0; i < N; i++) sum += (input[i] - target[i]) ** 2
  return { input, target, want: sum / N }
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
const close = (got: number | undefined, want: number): boolean => got !== undefined && Math.abs(got - want) <= 1e-5 * want

t.test('V2 REST binary form and gRPC raw contents: large tensors through shared memory, on a kernel worker', async t => {
  // requests wait 100 ms for others, so that a body's memory handed on before its kernel ran would be overwritten by the next body
  const s = await grpcApp(t, { ...NO_SHEDDING, kernelWorkers: 1, batchMaxDelayUs: 100_000, batchMaxElements: 100 * N })
  const cases = [1, 2, 3, 4, 5, 6].map(mseCase)
  const rest = async (c: ReturnType<typeof mseCase>): Promise<number | undefined> => {
    const inputs = [{ name: 'input', datatype: 'FP32', shape: [N], parameters: { binary_data_size: N * 4 } }, { name: 'target', datatype: 'FP32', shape: [N], parameters: { binary_data_size: N * 4 } }]
    const { payload, headers } = binaryBody({ inputs }, [bytes(c.input), bytes(c.target)])
    const r = await s.app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers, payload })
    return r.statusCode === 200 ? readResponse(r).outputs.get('loss')?.data[0] : undefined
  }
  const grpc = async (c: ReturnType<typeof mseCase>): Promise<number | undefined> => {
    const r = await s.call('ModelInfer', {
      model_name: 'mse',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [N] }, { name: 'target', datatype: 'FP32', shape: [N] }],
      raw_input_contents: [bytes(c.input), bytes(c.target)]
    })
    return r.ok ? outputsOf(r.value).get('loss')?.data[0] : undefined
  }
  const before = keptMemoryBytes().shared
  for (const [door, send] of [['REST', rest], ['gRPC', grpc]] as const) {
    for (const [i, c] of cases.entries()) t.ok(close(await send(c), c.want), `${door}, one after another: request ${i}`)
    t.ok(keptMemoryBytes().shared > before, `${door}: the memory is back in its pool once answered`)
    // each sent while the ones before it wait for their kernel
    const together = await Promise.all(cases.map(async (c, i) => { await sleep(10 * i); return await send(c) }))
    together.forEach((got, i) => t.ok(close(got, cases[i].want), `${door}, at once: request ${i} has its own answer`))
  }
  // both doors at once, each request a different case
  const mixed = await Promise.all(cases.map(async (c, i) => { await sleep(10 * i); return await (i % 2 === 0 ? rest : grpc)(c) }))
  mixed.forEach((got, i) => t.ok(close(got, cases[i].want), `REST and gRPC at once: request ${i} has its own answer`))
})
