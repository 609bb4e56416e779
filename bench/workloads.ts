/** The benchmark scenarios: a loss and a request body, built once (deterministic data). */
export interface Workload { name: string, loss: string, body: string }

let seed = 7
const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
const matrix = (n: number, d: number): number[][] => Array.from({ length: n }, () => Array.from({ length: d }, () => Math.round((rand() * 4 - 2) * 1e4) / 1e4))
const indices = (n: number, c: number): number[] => Array.from({ length: n }, () => Math.floor(rand() * c))
const base64 = (a: Float32Array | BigInt64Array): string => Buffer.from(a.buffer).toString('base64')

export const WORKLOADS: Workload[] = [
  { name: 'cross_entropy [32,10] nested', loss: 'cross_entropy', body: JSON.stringify({ input: matrix(32, 10), target: indices(32, 10) }) },
  { name: 'mse [64,16] nested', loss: 'mse', body: JSON.stringify({ input: matrix(64, 16), target: matrix(64, 16) }) },
  {
    name: 'cross_entropy [256,1000] base64',
    loss: 'cross_entropy',
    body: JSON.stringify({
      input: { dtype: 'float32', shape: [256, 1000], data: base64(Float32Array.from(matrix(256, 1000).flat())) },
      target: { dtype: 'int64', shape: [256], data: base64(BigInt64Array.from(indices(256, 1000), BigInt)) }
    })
  },
  { name: 'cross_entropy [32,10] grad', loss: 'cross_entropy', body: JSON.stringify({ input: matrix(32, 10), target: indices(32, 10), grad: true }) }
]
