/**
 * raw_input_contents left where they arrived, for a large message that grpc-js read (one not
 * read into shared memory by grpc-collected.ts: its header too long, or the shared budget
 * spent). grpc-js reads each message into one buffer of its own (the 5-byte frame header, then
 * the message), and the decoder's `bytes` are views into it.
 * Copied into shared memory, a [4096,1000] tensor was copied twice more on its way to the kernel
 * (there, and out of it, since ONNX Runtime refuses shared memory). Here the contents are moved
 * within that buffer to aligned places (`TENSOR_ALIGN`: the buffer is malloc's, itself aligned),
 * over the header bytes already decoded, and the buffer is marked as this request's own: the
 * kernel worker takes it by transfer, as it takes a V2 REST body of its own, at the cost of at
 * most one move in place (none when the contents lie aligned already). As for such a body, a
 * worker that dies takes the tensors with it: the call answers UNAVAILABLE (503 WORKER_FAILED)
 * and the client retries.
 */
import { alignedUp, ownMemory, TENSOR_ALIGN } from '../../tensor/tensor'
import { SMALLEST_KEPT_BODY } from '../../http/body-memory'

/** Bytes before the message in grpc-js's buffer: the compressed flag and the length. */
const FRAME_HEADER = 5

/**
 * Moves the `contents` (views into `message`, in the order they lie there) to aligned places in
 * the message's buffer and marks the buffer as the request's own; returns the views at their new
 * places. Returns undefined, touching nothing, when the message is small (shared memory serves
 * it), when its buffer may hold anything else (Node's pool of small buffers), or when the
 * contents do not fit (each must move towards the buffer's start: a later one is not written
 * over before it moves).
 */
export function alignedInPlace (message: Buffer, contents: Buffer[]): Buffer[] | undefined {
  const buffer = message.buffer
  if (!(buffer instanceof ArrayBuffer) || message.length < SMALLEST_KEPT_BODY || buffer.byteLength - message.length > FRAME_HEADER) return undefined
  const places: number[] = []
  let free = 0
  let after = message.byteOffset
  for (const c of contents) {
    // an aligned content stays; another goes to the first aligned place after the last one's
    const place = c.byteOffset % TENSOR_ALIGN === 0 && c.byteOffset >= free ? c.byteOffset : alignedUp(free)
    if (c.buffer !== buffer || c.byteOffset < after || place > c.byteOffset) return undefined
    places.push(place)
    free = place + c.length
    after = c.byteOffset + c.length
  }
  const bytes = new Uint8Array(buffer)
  const moved = contents.map((c, i) => {
    // towards the start, in order: what a move writes over is read already
    if (places[i] !== c.byteOffset) bytes.copyWithin(places[i], c.byteOffset, c.byteOffset + c.length)
    return Buffer.from(buffer, places[i], c.length)
  })
  ownMemory(buffer)
  return moved
}
