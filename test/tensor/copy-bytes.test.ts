import t from 'tap'
import { bytesOf, copyBytes, setElements } from '../../src/tensor/copy-bytes'

/** `size` bytes of a counter mixed with `seed`, so that a byte copied to the wrong place shows. */
function pattern (size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed + (i >> 8)) & 0xff
  return out
}

function memory (size: number, shared: boolean): Uint8Array {
  return new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size))
}

t.test('copies every byte to its place, whatever the memory and the offsets modulo 8', async t => {
  // around the shortest copy made natively, and socket-chunk sizes
  const lengths = [0, 1, 255, 256, 257, 65535, 65536, 65539, 131085]
  let cases = 0
  let wrong = 0
  for (const sharedSource of [false, true]) {
    for (const sharedTarget of [false, true]) {
      for (const length of lengths) {
        for (let sourceStart = 0; sourceStart < 8; sourceStart += length > 300 ? 3 : 1) {
          for (let offset = 0; offset < 8; offset++) {
            const whole = memory(length + 16, sharedSource)
            whole.set(pattern(length + 16, 7))
            const source = whole.subarray(sourceStart, sourceStart + length)
            // a target view that itself starts off the memory's first byte
            const base = memory(length + 32, sharedTarget)
            base.set(pattern(length + 32, 101))
            const target = base.subarray(5)
            const expected = Uint8Array.from(target)
            expected.set(Uint8Array.from(source), offset)
            copyBytes(source, target, offset)
            cases++
            if (!Buffer.from(target).equals(Buffer.from(expected))) {
              wrong++
              t.fail(`source ${sharedSource ? 'shared' : 'unshared'} at ${sourceStart}, target ${sharedTarget ? 'shared' : 'unshared'} at ${offset}, ${length} bytes`)
            }
          }
        }
      }
    }
  }
  t.equal(wrong, 0, `all ${cases} copies exact, the bytes around them untouched`)
})

t.test('as TypedArray.set: a copy past the end of the target throws and writes nothing; overlapping views of one memory copy as memmove', async t => {
  for (const shared of [false, true]) {
    const target = memory(1000, shared)
    t.throws(() => copyBytes(pattern(600, 3), target, 500), RangeError, `${shared ? 'shared' : 'unshared'}: 500 + 600 > 1000`)
    t.throws(() => copyBytes(pattern(600, 3), target, -1), RangeError)
    t.equal(target.reduce((a, b) => a + b, 0), 0, 'nothing written')
    const whole = memory(4096, shared)
    whole.set(pattern(4096, 9))
    const expected = Uint8Array.from(whole)
    expected.copyWithin(3, 0, 3000)
    copyBytes(whole.subarray(0, 3000), whole, 3)
    t.ok(Buffer.from(whole).equals(Buffer.from(expected)), `${shared ? 'shared' : 'unshared'}: 3,000 bytes moved forward by 3 within one memory`)
  }
})

t.test('bytesOf is a view of exactly the typed array\'s bytes', async t => {
  const memory = new SharedArrayBuffer(64)
  const floats = new Float32Array(memory, 12, 5)
  floats.set([1, 2, 3, 4, 5])
  const bytes = bytesOf(floats)
  t.equal(bytes.buffer, memory, 'the same memory')
  t.same([bytes.byteOffset, bytes.byteLength], [12, 20])
  t.same(Array.from(new Float32Array(Uint8Array.from(bytes).buffer)), [1, 2, 3, 4, 5])
})

t.test('setElements stores and converts numbers as TypedArray.set does, from and into shared memory, across its steps', async t => {
  type Numbers = Float32Array | Float64Array | Int32Array
  const make = <T extends Numbers>(Type: new (memory: ArrayBufferLike, offset: number, n: number) => T, width: number, n: number, shared: boolean): T =>
    new Type(shared ? new SharedArrayBuffer(width * (n + 3)) : new ArrayBuffer(width * (n + 3)), width, n)
  let cases = 0
  for (const n of [0, 255, 256, 8191, 8192, 8193, 2 * 8192 + 5]) {
    for (const From of [Float64Array, Float32Array, Int32Array]) {
      for (const To of [Float32Array, Float64Array]) {
        for (const sharedFrom of [false, true]) {
          for (const sharedTo of [false, true]) {
            const source = make<Numbers>(From, From.BYTES_PER_ELEMENT, n, sharedFrom)
            // values that round differently to float32: fractions, large, tiny, signed zero, non-finite
            for (let i = 0; i < n; i++) source[i] = From === Int32Array ? (i * 2654435761) | 0 : [Math.PI * i, 1e39, -1e-46, -0, NaN, -Infinity, 16777217 + i][i % 7]
            const target = make<Float32Array | Float64Array>(To, To.BYTES_PER_ELEMENT, n, sharedTo)
            const before = bytesOf(new Uint8Array(target.buffer)).slice()
            const expected = new To(n)
            expected.set(source)
            setElements(target, source)
            cases++
            const label = `${From.name} ${sharedFrom ? 'shared' : 'plain'} to ${To.name} ${sharedTo ? 'shared' : 'plain'}, ${n}`
            t.ok(Buffer.from(bytesOf(target)).equals(Buffer.from(bytesOf(expected))), `${label}: bit for bit`)
            const after = new Uint8Array(target.buffer)
            const width = To.BYTES_PER_ELEMENT
            t.ok(Buffer.from(after.subarray(0, width)).equals(Buffer.from(before.subarray(0, width))) && Buffer.from(after.subarray(width * (n + 1))).equals(Buffer.from(before.subarray(width * (n + 1)))), `${label}: nothing around it written`)
          }
        }
      }
    }
  }
  t.equal(cases, 7 * 3 * 2 * 4)
})
