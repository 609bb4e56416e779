/**
 * Calling losshub from TypeScript through a client typed from openapi.yaml.
 *
 *   npm run client                                   # regenerates losshub.d.ts from openapi.yaml
 *   npx ts-node-transpile-only examples/client/example.ts http://localhost:8080
 *
 * openapi-fetch (a thin typed wrapper over fetch) checks paths, request bodies and responses
 * against the generated `paths` at compile time; nothing is generated at run time.
 * test/examples/client.test.ts runs these same functions against a real server.
 */
import createClient, { type Client } from 'openapi-fetch'
import type { components, paths } from './losshub'

export type Tensor = components['schemas']['Tensor']
export type TypedTensor = components['schemas']['TypedTensor']
export type ErrorResponse = components['schemas']['ErrorResponse']

/** A typed client for the losshub at `baseUrl`. */
export function connect (baseUrl: string): Client<paths> {
  return createClient<paths>({ baseUrl })
}

/** Little-endian float32 bytes as base64: the fast tensor form for large arrays. */
export function float32Base64 (shape: number[], values: ArrayLike<number>): TypedTensor {
  const bytes = new Uint8Array(new Float32Array(Array.from(values)).buffer) // x86 and ARM are little-endian
  return { dtype: 'float32', shape, data: Buffer.from(bytes).toString('base64') }
}

/** A response tensor (any of the three forms) as a flat array of numbers. */
export function numbers (t: Tensor): number[] {
  const num = (v: unknown): number => typeof v === 'number' ? v : Number(v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : NaN)
  if (typeof t === 'object' && t !== null && !Array.isArray(t)) {
    if (typeof t.data !== 'string') return t.data.map(num)
    const bytes = Buffer.from(t.data, 'base64')
    const buffer = new Uint8Array(bytes).buffer // an aligned copy
    if (t.dtype === 'float32') return Array.from(new Float32Array(buffer))
    if (t.dtype === 'float64') return Array.from(new Float64Array(buffer))
    if (t.dtype === 'int32') return Array.from(new Int32Array(buffer))
    return Array.from(new BigInt64Array(buffer), Number)
  }
  return Array.isArray(t) ? (t as unknown[]).flat(Infinity).map(num) : [num(t)]
}

/** Thrown for a non-2xx answer, with the service's error code. */
export class LosshubError extends Error {
  constructor (readonly status: number, readonly body: ErrorResponse) {
    super(`${status} ${body.code}: ${body.message}`)
  }
}

/** cross_entropy over three samples of two classes, with the gradient w.r.t. the logits (nested arrays in and out). */
export async function crossEntropy (client: Client<paths>): Promise<{ loss: number, grad: number[] }> {
  const { data, error, response } = await client.POST('/loss/cross_entropy', {
    body: { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1], grad: true }
  })
  if (error !== undefined) throw new LosshubError(response.status, error)
  return { loss: numbers(data.loss)[0], grad: numbers(data.grad?.input ?? []) }
}

/**
 * ctc over T=2 frames of C=2 classes (blank 0) for one sequence whose target is [1], with every
 * log-probability log(1/2): base64 in, so base64 out.
 */
export async function ctc (client: Client<paths>): Promise<{ loss: number, grad: number[], form: string }> {
  const half = Math.log(0.5)
  const { data, error, response } = await client.POST('/loss/ctc', {
    body: {
      log_probs: float32Base64([2, 1, 2], [half, half, half, half]),
      targets: [[1]],
      input_lengths: [2],
      target_lengths: [1],
      grad: true
    }
  })
  if (error !== undefined) throw new LosshubError(response.status, error)
  const form = typeof data.loss === 'object' && data.loss !== null && !Array.isArray(data.loss) && typeof data.loss.data === 'string' ? 'base64' : 'other'
  return { loss: numbers(data.loss)[0], grad: numbers(data.grad?.log_probs ?? []), form }
}

/**
 * A composite (POST /losses): bce_with_logits and binary dice over the same logits and mask,
 * half and half, with the gradient of the total w.r.t. the logits, in one call.
 */
export async function composite (client: Client<paths>): Promise<{ total: number, terms: Record<string, number>, grad: number[] }> {
  const { data, error, response } = await client.POST('/losses', {
    body: {
      tensors: { logits: [[[[1.2, -0.5], [0.3, 2.0]]]], mask: [[[[1, 0], [0, 1]]]] },
      terms: [
        { loss: 'bce_with_logits', weight: 0.5, args: { input: 'logits', target: 'mask' } },
        { loss: 'dice', weight: 0.5, args: { input: 'logits', target: 'mask' }, options: { mode: 'binary' }, name: 'dice' }
      ],
      grad: true
    }
  })
  if (error !== undefined) throw new LosshubError(response.status, error)
  const terms = Object.fromEntries(data.terms.map(t => [t.name ?? t.loss, numbers(t.value)[0]]))
  return { total: numbers(data.total)[0], terms, grad: numbers(data.grad?.logits ?? []) }
}

/** A call the service rejects: four targets for three samples. Returns the error instead of throwing. */
export async function shapeError (client: Client<paths>): Promise<{ status: number, error?: ErrorResponse }> {
  const { error, response } = await client.POST('/loss/cross_entropy', {
    body: { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1, 0] }
  })
  return { status: response.status, error }
}

async function main (): Promise<void> {
  const client = connect(process.argv[2] ?? 'http://localhost:8080')
  console.log('cross_entropy', await crossEntropy(client))
  console.log('ctc', await ctc(client))
  console.log('composite', await composite(client))
  console.log('error', await shapeError(client))
}

if (require.main === module) {
  main().catch(err => {
    console.error(err)
    process.exit(1)
  })
}
